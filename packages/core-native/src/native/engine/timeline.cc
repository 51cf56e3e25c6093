#include "engine/timeline.h"

#include "common/clock.h"
#include "common/error.h"

namespace unicc {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); out += b; }
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

}  // namespace

Timeline::Timeline(const std::string& path, int rank) : rank_(rank) {
  if (path.empty()) return;
  f_ = std::fopen(path.c_str(), "w");
  if (!f_) throw CommError("cannot write the timeline to '" + path + "' (UNICC_TIMELINE): check the folder exists and is writable");
  std::fputs("[\n", f_);
}

Timeline::~Timeline() {
  if (!f_) return;
  std::fputs("\n]\n", f_);
  std::fclose(f_);
}

void Timeline::name_row(int row, const std::string& name) {
  if (!f_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::fprintf(f_, "%s{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":%s}}",
               first_ ? "" : ",\n", rank_, row, json_string(name).c_str());
  first_ = false;
}

void Timeline::span(int row, const char* phase, int64_t start_us, int64_t end_us, const std::string& args_json) {
  if (!f_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::fprintf(f_, "%s{\"ph\":\"X\",\"name\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":%lld,\"dur\":%lld%s%s}",
               first_ ? "" : ",\n", phase, rank_, row, static_cast<long long>(start_us),
               static_cast<long long>(end_us - start_us), args_json.empty() ? "" : ",\"args\":",
               args_json.c_str());
  first_ = false;
  std::fflush(f_);
}

}  // namespace unicc
