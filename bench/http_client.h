#ifndef DISCOVERY_BENCH_HTTP_CLIENT_H_
#define DISCOVERY_BENCH_HTTP_CLIENT_H_

// The HTTP requests of the benchmarks, over libcurl.

#include <curl/curl.h>

#include <optional>
#include <string>

namespace discovery::bench {

// Requests on one keep-alive connection, as one Prometheus refreshes its targets: the connection
// outlives each request, so a timed loop of Get measures the server's answers, not new
// connections. (tests/testing's HttpRequest opens a connection per request, and the benchmarks
// that start discoveryd in their own process are built without the tests.)
class HttpClient {
 public:
  // `authorization`, when not empty, is sent as the Authorization header of every request.
  explicit HttpClient(const std::string& authorization = "");
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `header` ("Name: value") with every later request.
  void AddHeader(const std::string& header);
  // GETs `url`: the status, 0 when no answer came. The body replaces `*body` when given and is
  // dropped otherwise.
  int Get(const std::string& url, std::string* body = nullptr);
  // POSTs `body` to `url`, dropping the answer's body: the status, 0 when no answer came.
  int Post(const std::string& url, const std::string& body);
  // DELETEs `url`; the answer's body replaces `*body` when given: the status, 0 when no answer
  // came.
  int Delete(const std::string& url, std::string* body = nullptr);
  // The value of header `name` in the last answer, if it had one.
  std::optional<std::string> ResponseHeader(const char* name) const;

 private:
  // Sends the request set up on curl_: the status, 0 when no answer came. The answer's body
  // replaces `*body` when given and is dropped otherwise.
  int Perform(std::string* body);

  CURL* curl_;
  curl_slist* headers_ = nullptr;
};

// One GET on a connection of its own (see HttpClient::Get).
int HttpGet(const std::string& url, std::string* body = nullptr,
            const std::string& authorization = "");

}  // namespace discovery::bench

#endif  // DISCOVERY_BENCH_HTTP_CLIENT_H_
