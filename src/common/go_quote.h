// Go's strconv.Quote, so that error texts quoting the user's input read like Go's.
#pragma once

#include <string>
#include <string_view>

namespace discovery {

// Renders `s` the way Go's strconv.Quote does, so error texts read like Go's. Non-ASCII
// printability is approximated: C1 controls and common invisible format characters are
// escaped, every other valid code point is kept.
std::string GoQuote(std::string_view s);

}  // namespace discovery
