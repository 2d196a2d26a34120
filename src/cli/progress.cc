#include "cli/progress.h"

#include <algorithm>
#include <cmath>

#include "fmt/format.h"

namespace discovery::cli {
namespace {

constexpr absl::Duration kRedrawInterval = absl::Milliseconds(100);

// "45s", "12m5s", "2h3m": whole seconds, as an operator reads a wait.
std::string ShortDuration(absl::Duration duration) {
  const int64_t seconds =
      std::max<int64_t>(0, absl::ToInt64Seconds(absl::Ceil(duration, absl::Seconds(1))));
  if (seconds < 60) {
    return fmt::format("{}s", seconds);
  }
  if (seconds < 3600) {
    return fmt::format("{}m{}s", seconds / 60, seconds % 60);
  }
  return fmt::format("{}h{}m", seconds / 3600, seconds % 3600 / 60);
}

}  // namespace

std::string ProgressLine(size_t done, size_t total, size_t failed, absl::Duration elapsed,
                         size_t width) {
  const double fraction =
      total == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  std::string numbers = fmt::format("  {}/{}  {:3.0f}%", done, total, 100.0 * fraction);
  const double seconds = absl::ToDoubleSeconds(elapsed);
  if (done > 0 && seconds > 0) {
    const double rate = static_cast<double>(done) / seconds;
    numbers += fmt::format("  {:.0f}/s", rate);
    if (done < total) {
      numbers += "  ETA " + ShortDuration(absl::Seconds(static_cast<double>(total - done) / rate));
    }
  }
  if (failed > 0) {
    numbers += fmt::format("  ({} failed)", failed);
  }
  // The bar takes what the numbers leave, between 10 and 30 characters.
  const size_t bar =
      std::clamp<size_t>(width > numbers.size() + 2 ? width - numbers.size() - 2 : 0, 10, 30);
  const auto filled = static_cast<size_t>(std::floor(fraction * static_cast<double>(bar)));
  return fmt::format("[{}{}]{}", std::string(filled, '#'), std::string(bar - filled, '.'), numbers);
}

ProgressBar::ProgressBar(std::ostream& out, size_t total, absl::Time start)
    : out_(out), total_(total), start_(start) {}

void ProgressBar::Update(size_t done, size_t failed, absl::Time now, bool force) {
  if (!force && now - last_drawn_ < kRedrawInterval) {
    return;
  }
  last_drawn_ = now;
  drawn_ = true;
  // Carriage return and erase-line: the bar replaces itself.
  out_ << "\r\033[K" << ProgressLine(done, total_, failed, now - start_) << std::flush;
}

void ProgressBar::Clear() {
  if (drawn_) {
    out_ << "\r\033[K" << std::flush;
    drawn_ = false;
  }
}

}  // namespace discovery::cli
