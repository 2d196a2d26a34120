#include "common/json_string.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace discovery {

bool IsPlainJsonText(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte >= 0x20 && byte < 0x7f && c != '"' && c != '\\';
  });
}

std::string JsonStringLiteral(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

}  // namespace discovery
