#include "hash/fnv1a.h"

namespace discovery::hash {

uint64_t Fnv1a64(std::string_view data) {
  uint64_t hash = 14695981039346656037ULL;  // the offset basis
  for (const char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;  // the FNV prime
  }
  return hash;
}

}  // namespace discovery::hash
