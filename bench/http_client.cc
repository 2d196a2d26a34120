#include "http_client.h"

#include <curl/curl.h>

#include <cstddef>
#include <optional>
#include <string>

namespace discovery::bench {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t Drop(char* /*data*/, size_t size, size_t n, void* /*out*/) { return size * n; }

}  // namespace

HttpClient::HttpClient(const std::string& authorization) : curl_(curl_easy_init()) {
  if (!authorization.empty()) {
    AddHeader("Authorization: " + authorization);
  }
}

HttpClient::~HttpClient() {
  curl_slist_free_all(headers_);
  curl_easy_cleanup(curl_);
}

void HttpClient::AddHeader(const std::string& header) {
  headers_ = curl_slist_append(headers_, header.c_str());
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
}

int HttpClient::Get(const std::string& url, std::string* body) {
  curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, nullptr);  // after a Delete on this handle
  curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);             // after a Post on this handle
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  return Perform(body);
}

int HttpClient::Post(const std::string& url, const std::string& body) {
  curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, nullptr);
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl_, CURLOPT_COPYPOSTFIELDS, body.c_str());
  return Perform(nullptr);
}

int HttpClient::Delete(const std::string& url, std::string* body) {
  curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, "DELETE");
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  return Perform(body);
}

int HttpClient::Perform(std::string* body) {
  if (body != nullptr) {
    body->clear();
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Append);
  } else {
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Drop);
  }
  long status = 0;  // NOLINT(google-runtime-int): curl's type
  if (curl_easy_perform(curl_) != CURLE_OK ||
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) {
    return 0;
  }
  return static_cast<int>(status);
}

std::optional<std::string> HttpClient::ResponseHeader(const char* name) const {
  curl_header* header = nullptr;
  if (curl_easy_header(curl_, name, 0, CURLH_HEADER, -1, &header) != CURLHE_OK) {
    return std::nullopt;
  }
  return std::string(header->value);
}

int HttpGet(const std::string& url, std::string* body, const std::string& authorization) {
  return HttpClient(authorization).Get(url, body);
}

}  // namespace discovery::bench
