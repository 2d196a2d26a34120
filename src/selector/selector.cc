#include "selector/selector.h"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

#include "common/status_macros.h"

namespace discovery::selector {
namespace {

// k8s limits: label names and values (validation.LabelValueMaxLength) and DNS subdomains
// (validation.DNS1123SubdomainMaxLength).
constexpr std::size_t kMaxNameLength = 63;
constexpr std::size_t kMaxValueLength = 63;
constexpr std::size_t kMaxPrefixLength = 253;

enum class TokenKind {
  kEndOfString,
  kClosedPar,
  kComma,
  kDoesNotExist,
  kDoubleEquals,
  kEquals,
  kGreaterThan,
  kIdentifier,
  kIn,
  kLessThan,
  kNotEquals,
  kNotIn,
  kOpenPar,
};

struct Token {
  TokenKind kind = TokenKind::kEndOfString;
  absl::string_view text;  // points into the parsed input
  std::size_t position = 0;
};

// apimachinery's whitespace set; other control characters end up inside identifiers and are
// rejected by key/value validation.
bool IsWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool IsSpecialSymbol(char c) {
  switch (c) {
    case '=':
    case '!':
    case '(':
    case ')':
    case ',':
    case '>':
    case '<':
      return true;
    default:
      return false;
  }
}

TokenKind SymbolKind(absl::string_view symbol) {
  if (symbol == "!=") {
    return TokenKind::kNotEquals;
  }
  if (symbol == "==") {
    return TokenKind::kDoubleEquals;
  }
  switch (symbol.front()) {
    case '=':
      return TokenKind::kEquals;
    case '!':
      return TokenKind::kDoesNotExist;
    case '(':
      return TokenKind::kOpenPar;
    case ')':
      return TokenKind::kClosedPar;
    case ',':
      return TokenKind::kComma;
    case '>':
      return TokenKind::kGreaterThan;
    default:
      return TokenKind::kLessThan;
  }
}

// Splits `text` the way apimachinery's Lexer does: symbols are matched greedily, which only
// ever joins "!=" and "=="; identifiers run until whitespace or a symbol; "in" and "notin" are
// keywords. The result always ends with kEndOfString.
//
// Deliberate difference: Go's lexer treats a NUL byte as the end of the input and silently
// drops what follows; here NUL is an ordinary byte, so it fails validation instead.
std::vector<Token> Lex(absl::string_view text) {
  std::vector<Token> tokens;
  std::size_t pos = 0;
  while (true) {
    while (pos < text.size() && IsWhitespace(text[pos])) {
      ++pos;
    }
    if (pos == text.size()) {
      tokens.push_back({TokenKind::kEndOfString, text.substr(pos), pos});
      return tokens;
    }
    const std::size_t start = pos;
    if (IsSpecialSymbol(text[pos])) {
      std::size_t length = 1;
      if (pos + 1 < text.size() && text[pos + 1] == '=' && (text[pos] == '!' || text[pos] == '=')) {
        length = 2;
      }
      pos += length;
      const absl::string_view symbol = text.substr(start, length);
      tokens.push_back({SymbolKind(symbol), symbol, start});
      continue;
    }
    while (pos < text.size() && !IsSpecialSymbol(text[pos]) && !IsWhitespace(text[pos])) {
      ++pos;
    }
    const absl::string_view word = text.substr(start, pos - start);
    TokenKind kind = TokenKind::kIdentifier;
    if (word == "in") {
      kind = TokenKind::kIn;
    } else if (word == "notin") {
      kind = TokenKind::kNotIn;
    }
    tokens.push_back({kind, word, start});
  }
}

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool IsLabelName(absl::string_view s) {
  if (s.empty() || !IsAsciiAlnum(s.front()) || !IsAsciiAlnum(s.back())) {
    return false;
  }
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAsciiAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*
bool IsDns1123Subdomain(absl::string_view s) {
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (label.empty() || !IsLowerAlnum(label.front()) || !IsLowerAlnum(label.back())) {
      return false;
    }
    if (!std::all_of(label.begin(), label.end(),
                     [](char c) { return IsLowerAlnum(c) || c == '-'; })) {
      return false;
    }
  }
  return true;
}

constexpr absl::string_view kNameRule =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')";
constexpr absl::string_view kValueRule =
    "must be empty or consist of alphanumeric characters, '-', '_' or '.', and start and end "
    "with an alphanumeric character (e.g. 'MyValue', 'my_value' or '12345')";

// Validation errors carry only the detail; the parser adds where the offending text is.
absl::Status ValidateKey(absl::string_view key) {
  const std::string prefix_text = absl::StrCat("invalid label key '", absl::CEscape(key), "': ");
  const std::vector<absl::string_view> parts = absl::StrSplit(key, '/');
  if (parts.size() > 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix_text,
        "a label key is a name with an optional DNS subdomain prefix and one '/' (e.g. "
        "'example.com/MyName')"));
  }
  absl::string_view name = parts.back();
  if (parts.size() == 2) {
    const absl::string_view prefix = parts.front();
    if (prefix.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(prefix_text, "prefix part must be non-empty"));
    }
    if (prefix.size() > kMaxPrefixLength) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix_text, "prefix part must be no more than ", kMaxPrefixLength,
                       " characters (has ", prefix.size(), ")"));
    }
    if (!IsDns1123Subdomain(prefix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix_text,
          "prefix part must be a lowercase RFC 1123 subdomain: lower case alphanumeric "
          "characters, '-' or '.', starting and ending with an alphanumeric character (e.g. "
          "'example.com')"));
    }
  }
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix_text, "name part must be non-empty"));
  }
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(prefix_text, "name part must be no more than ",
                                                   kMaxNameLength, " characters (has ", name.size(),
                                                   ")"));
  }
  if (!IsLabelName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(prefix_text, "name part ", kNameRule));
  }
  return absl::OkStatus();
}

absl::Status ValidateValue(absl::string_view value) {
  if (value.size() > kMaxValueLength) {
    return absl::InvalidArgumentError(absl::StrCat("invalid label value '", absl::CEscape(value),
                                                   "': must be no more than ", kMaxValueLength,
                                                   " characters (has ", value.size(), ")"));
  }
  if (!value.empty() && !IsLabelName(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid label value '", absl::CEscape(value), "': ", kValueRule));
  }
  return absl::OkStatus();
}

// Go's strconv.ParseInt(s, 10, 64): optional sign, at least one decimal digit, no other
// characters, within int64.
std::optional<int64_t> ParseInt64(absl::string_view s) {
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    // std::from_chars would accept a second sign here ("+-1"); Go does not.
    if (!s.empty() && s.front() == '-') {
      return std::nullopt;
    }
  }
  int64_t value = 0;
  const char* const end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return value;
}

// A value as written, kept with its position so validation errors can point at it.
struct ParsedValue {
  absl::string_view text;
  std::size_t position = 0;
};

// Where in the grammar the parser is: "in" and "notin" are operators only after a key; as keys
// and values they are plain identifiers ("in in (in)" is valid).
enum class Context { kKeyAndOperator, kValues };

// Recursive-descent parser over the pre-lexed tokens, following apimachinery's Parser step by
// step so that the accepted language (including its quirks, such as "k=" and "k in ()" meaning
// the empty value) is identical.
class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text), tokens_(Lex(text)) {}

  absl::StatusOr<std::vector<Requirement>> Parse() {
    std::vector<Requirement> requirements;
    if (Peek(Context::kValues).kind == TokenKind::kEndOfString) {
      return requirements;
    }
    while (true) {
      const Token first = Peek(Context::kValues);
      if (first.kind != TokenKind::kIdentifier && first.kind != TokenKind::kDoesNotExist) {
        return ErrorAt(first, "'!', identifier or end of string");
      }
      DISCOVERY_ASSIGN_OR_RETURN(Requirement requirement, ParseRequirement());
      requirements.push_back(std::move(requirement));
      const Token separator = Next(Context::kValues);
      if (separator.kind == TokenKind::kEndOfString) {
        return requirements;
      }
      if (separator.kind != TokenKind::kComma) {
        return ErrorAt(separator, "',' or end of string");
      }
      const Token after = Peek(Context::kValues);
      if (after.kind != TokenKind::kIdentifier && after.kind != TokenKind::kDoesNotExist) {
        return ErrorAt(after, "identifier or '!' after ','");
      }
    }
  }

 private:
  // The token list always ends with kEndOfString and the grammar never reads past it, so the
  // index stays in range; the clamp keeps a logic slip from becoming an out-of-bounds read.
  Token Peek(Context context) const {
    Token token = tokens_[std::min(index_, tokens_.size() - 1)];
    if (context == Context::kValues &&
        (token.kind == TokenKind::kIn || token.kind == TokenKind::kNotIn)) {
      token.kind = TokenKind::kIdentifier;
    }
    return token;
  }

  Token Next(Context context) {
    Token token = Peek(context);
    ++index_;
    return token;
  }

  absl::Status ErrorAt(std::size_t position, absl::string_view detail) const {
    return absl::InvalidArgumentError(absl::StrCat("invalid selector '", absl::CEscape(text_),
                                                   "' at position ", position, ": ", detail));
  }

  absl::Status ErrorAt(const Token& found, absl::string_view expected) const {
    const std::string what = found.kind == TokenKind::kEndOfString
                                 ? std::string("end of string")
                                 : absl::StrCat("'", absl::CEscape(found.text), "'");
    return ErrorAt(found.position, absl::StrCat("found ", what, ", expected: ", expected));
  }

  absl::StatusOr<Requirement> ParseRequirement() {
    Token key = Next(Context::kValues);
    const bool negated = key.kind == TokenKind::kDoesNotExist;
    if (negated) {
      key = Next(Context::kValues);
    }
    if (key.kind != TokenKind::kIdentifier) {
      return ErrorAt(key, "identifier");
    }
    if (absl::Status status = ValidateKey(key.text); !status.ok()) {
      return ErrorAt(key.position, status.message());
    }
    Requirement requirement;
    requirement.key = std::string{key.text};
    const Token after_key = Peek(Context::kValues);
    if (negated) {
      if (after_key.kind != TokenKind::kEndOfString && after_key.kind != TokenKind::kComma) {
        // apimachinery reports the same token; the hint says why it is wrong here.
        return ErrorAt(after_key, "',' or end of string ('!key' takes no operator or value)");
      }
      requirement.op = Operator::kDoesNotExist;
      return requirement;
    }
    if (after_key.kind == TokenKind::kEndOfString || after_key.kind == TokenKind::kComma) {
      requirement.op = Operator::kExists;
      return requirement;
    }
    DISCOVERY_ASSIGN_OR_RETURN(requirement.op, ParseOperator());
    std::vector<ParsedValue> values;
    if (requirement.op == Operator::kIn || requirement.op == Operator::kNotIn) {
      DISCOVERY_ASSIGN_OR_RETURN(values, ParseValueSet());
    } else {
      DISCOVERY_ASSIGN_OR_RETURN(values, ParseExactValue());
    }
    DISCOVERY_RETURN_IF_ERROR(ValidateValues(requirement.op, values));
    for (const ParsedValue& value : values) {
      requirement.values.emplace_back(value.text);
    }
    std::sort(requirement.values.begin(), requirement.values.end());
    requirement.values.erase(std::unique(requirement.values.begin(), requirement.values.end()),
                             requirement.values.end());
    return requirement;
  }

  absl::StatusOr<Operator> ParseOperator() {
    const Token token = Next(Context::kKeyAndOperator);
    switch (token.kind) {
      case TokenKind::kIn:
        return Operator::kIn;
      case TokenKind::kNotIn:
        return Operator::kNotIn;
      case TokenKind::kEquals:
        return Operator::kEquals;
      case TokenKind::kDoubleEquals:
        return Operator::kDoubleEquals;
      case TokenKind::kNotEquals:
        return Operator::kNotEquals;
      case TokenKind::kGreaterThan:
        return Operator::kGreaterThan;
      case TokenKind::kLessThan:
        return Operator::kLessThan;
      default:
        return ErrorAt(token,
                       "one of 'in', 'notin', '=', '==', '!=', '>', '<', ',' or end of string");
    }
  }

  // "(" values ")" where values may be empty or contain empty entries: "()", "(,a)", "(a,)"
  // and "(a,,b)" all add the empty value, as in apimachinery.
  absl::StatusOr<std::vector<ParsedValue>> ParseValueSet() {
    const Token open = Next(Context::kValues);
    if (open.kind != TokenKind::kOpenPar) {
      return ErrorAt(open, "'('");
    }
    const Token first = Peek(Context::kValues);
    if (first.kind == TokenKind::kClosedPar) {
      Next(Context::kValues);
      return std::vector<ParsedValue>{{first.text.substr(0, 0), first.position}};
    }
    if (first.kind != TokenKind::kIdentifier && first.kind != TokenKind::kComma) {
      return ErrorAt(first, "identifier, ',' or ')'");
    }
    std::vector<ParsedValue> values;
    while (true) {
      const Token token = Next(Context::kValues);
      if (token.kind == TokenKind::kIdentifier) {
        values.push_back({token.text, token.position});
        const Token after = Peek(Context::kValues);
        if (after.kind == TokenKind::kClosedPar) {
          Next(Context::kValues);
          return values;
        }
        if (after.kind != TokenKind::kComma) {
          return ErrorAt(after, "',' or ')'");
        }
        continue;
      }
      if (token.kind != TokenKind::kComma) {
        return ErrorAt(token, "identifier, ',' or ')'");
      }
      // A comma with nothing before it, or followed by ')' or another comma, encloses an
      // empty value.
      const Token after = Peek(Context::kValues);
      if (values.empty()) {
        values.push_back({token.text.substr(0, 0), token.position});
      }
      if (after.kind == TokenKind::kClosedPar) {
        values.push_back({after.text.substr(0, 0), after.position});
        Next(Context::kValues);
        return values;
      }
      if (after.kind == TokenKind::kComma) {
        values.push_back({after.text.substr(0, 0), after.position});
      }
    }
  }

  // A single value; nothing before ',' or the end means the empty value ("k=" is valid).
  absl::StatusOr<std::vector<ParsedValue>> ParseExactValue() {
    const Token next = Peek(Context::kValues);
    if (next.kind == TokenKind::kEndOfString || next.kind == TokenKind::kComma) {
      return std::vector<ParsedValue>{{next.text.substr(0, 0), next.position}};
    }
    const Token token = Next(Context::kValues);
    if (token.kind != TokenKind::kIdentifier) {
      return ErrorAt(token, "value");
    }
    return std::vector<ParsedValue>{{token.text, token.position}};
  }

  absl::Status ValidateValues(Operator op, const std::vector<ParsedValue>& values) const {
    if (op == Operator::kGreaterThan || op == Operator::kLessThan) {
      // The parser yields exactly one value for these operators.
      const ParsedValue& value = values.front();
      if (!ParseInt64(value.text).has_value()) {
        const std::string found = value.text.empty()
                                      ? std::string("no value")
                                      : absl::StrCat("'", absl::CEscape(value.text), "'");
        return ErrorAt(value.position,
                       absl::StrCat("'>' and '<' require an integer (64-bit), found ", found));
      }
    }
    for (const ParsedValue& value : values) {
      if (absl::Status status = ValidateValue(value.text); !status.ok()) {
        return ErrorAt(value.position, status.message());
      }
    }
    return absl::OkStatus();
  }

  absl::string_view text_;
  std::vector<Token> tokens_;
  std::size_t index_ = 0;
};

bool RequirementMatches(const Requirement& requirement,
                        const std::map<std::string, std::string>& labels) {
  const auto it = labels.find(requirement.key);
  const bool present = it != labels.end();
  const auto has_value = [&] {
    return std::binary_search(requirement.values.begin(), requirement.values.end(), it->second);
  };
  switch (requirement.op) {
    case Operator::kEquals:
    case Operator::kDoubleEquals:
    case Operator::kIn:
      return present && has_value();
    case Operator::kNotEquals:
    case Operator::kNotIn:
      return !present || !has_value();
    case Operator::kExists:
      return present;
    case Operator::kDoesNotExist:
      return !present;
    case Operator::kGreaterThan:
    case Operator::kLessThan: {
      if (!present || requirement.values.size() != 1) {
        return false;
      }
      const std::optional<int64_t> actual = ParseInt64(it->second);
      const std::optional<int64_t> bound = ParseInt64(requirement.values.front());
      if (!actual.has_value() || !bound.has_value()) {
        return false;
      }
      return requirement.op == Operator::kGreaterThan ? *actual > *bound : *actual < *bound;
    }
  }
  return false;
}

std::string RequirementString(const Requirement& requirement) {
  const std::string values = absl::StrJoin(requirement.values, ",");
  switch (requirement.op) {
    case Operator::kEquals:
      return absl::StrCat(requirement.key, "=", values);
    case Operator::kDoubleEquals:
      return absl::StrCat(requirement.key, "==", values);
    case Operator::kNotEquals:
      return absl::StrCat(requirement.key, "!=", values);
    case Operator::kIn:
      return absl::StrCat(requirement.key, " in (", values, ")");
    case Operator::kNotIn:
      return absl::StrCat(requirement.key, " notin (", values, ")");
    case Operator::kExists:
      return requirement.key;
    case Operator::kDoesNotExist:
      return absl::StrCat("!", requirement.key);
    case Operator::kGreaterThan:
      return absl::StrCat(requirement.key, ">", values);
    case Operator::kLessThan:
      return absl::StrCat(requirement.key, "<", values);
  }
  return requirement.key;
}

}  // namespace

absl::Status ValidateLabelKey(std::string_view key) {
  return ValidateKey(absl::string_view(key.data(), key.size()));
}

absl::Status ValidateLabelValue(std::string_view value) {
  return ValidateValue(absl::string_view(value.data(), value.size()));
}

absl::StatusOr<Selector> Selector::Parse(std::string_view text) {
  // Debian's abseil keeps its own string_view type, so convert once at the boundary.
  Parser parser(absl::string_view(text.data(), text.size()));
  Selector selector;
  DISCOVERY_ASSIGN_OR_RETURN(selector.requirements_, parser.Parse());
  // Stable, so requirements on the same key keep their written order; Go's sort.Sort behaves
  // the same way for selectors of realistic size (insertion sort below 13 elements).
  std::stable_sort(selector.requirements_.begin(), selector.requirements_.end(),
                   [](const Requirement& a, const Requirement& b) { return a.key < b.key; });
  return selector;
}

bool Selector::Matches(const std::map<std::string, std::string>& labels) const {
  return std::all_of(requirements_.begin(), requirements_.end(),
                     [&](const Requirement& r) { return RequirementMatches(r, labels); });
}

std::string Selector::String() const {
  return absl::StrJoin(requirements_, ",", [](std::string* out, const Requirement& r) {
    out->append(RequirementString(r));
  });
}

}  // namespace discovery::selector
