// Thread names, so that top -H, ps -L, perf and gdb tell a process's threads apart ("view",
// "store-commit") instead of showing the program's name for every one.
#pragma once

#include <string>
#include <string_view>

namespace discovery {

// Names the calling thread `name`; Linux keeps at most 15 bytes of it, so a longer name is cut
// there. Thread-safe.
void NameThisThread(std::string_view name);

// The calling thread's name (the program's name for a thread nobody named). Thread-safe.
std::string ThisThreadName();

}  // namespace discovery
