// The HTTP server over TLS.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "curl/curl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/x509.h"
#include "openssl/x509v3.h"

#include "http/server.h"
#include "http/server_test_util.h"
#include "testing/status_matchers.h"

namespace discovery::http {
namespace {

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertDeleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using CertPtr = std::unique_ptr<X509, CertDeleter>;

KeyPtr GenerateKey() {
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  if (context == nullptr || EVP_PKEY_keygen_init(context) != 1 ||
      EVP_PKEY_CTX_set_group_name(context, "P-256") != 1 || EVP_PKEY_generate(context, &key) != 1) {
    ADD_FAILURE() << "key generation failed";
  }
  EVP_PKEY_CTX_free(context);
  return KeyPtr(key);
}

// Valid for 127.0.0.1 and localhost for an hour; its own CA.
CertPtr SelfSigned(EVP_PKEY* key) {
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  X509_add_ext(cert.get(), san, -1);
  X509_EXTENSION_free(san);
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) {
    ADD_FAILURE() << "certificate signing failed";
  }
  return cert;
}

class TempDir {
 public:
  TempDir() {
    std::string path = ::testing::TempDir() + "http_tls_XXXXXX";
    path_ = mkdtemp(path.data()) != nullptr ? path : "";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;

  std::string File(std::string_view name) const { return absl::StrCat(path_, "/", ToAbsl(name)); }

 private:
  std::string path_;
};

void WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  BIO* bio = BIO_new_file(path.c_str(), "w");
  ASSERT_NE(bio, nullptr) << path;
  if (cert != nullptr) {
    EXPECT_EQ(PEM_write_bio_X509(bio, cert), 1);
  }
  if (key != nullptr) {
    EXPECT_EQ(PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  }
  BIO_free(bio);
}

class HttpServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = GenerateKey();
    ASSERT_NE(key_, nullptr);
    cert_ = SelfSigned(key_.get());
    WritePem(cert_file_, cert_.get(), nullptr);
    WritePem(key_file_, nullptr, key_.get());
  }

  ServerOptions TlsServerOptions() const {
    ServerOptions options = LocalOptions();
    options.tls = TlsOptions{.cert_file = cert_file_, .key_file = key_file_};
    return options;
  }

  TempDir dir_;
  std::string cert_file_ = dir_.File("cert.pem");
  std::string key_file_ = dir_.File("key.pem");
  KeyPtr key_;
  CertPtr cert_;
};

TEST_F(HttpServerTlsTest, ServesHttpsWithAVerifiedCertificate) {
  auto server = StartOrDie(TlsServerOptions(), Echo);
  ASSERT_NE(server, nullptr);
  CurlClient client;
  client.set_ca_file(cert_file_);
  const std::string url = absl::StrCat("https://127.0.0.1:", server->port(), "/secure?a=b");

  CurlResult first = client.Post(url, "payload");
  CurlResult second = client.Get(url);

  ASSERT_EQ(first.code, CURLE_OK) << curl_easy_strerror(first.code);
  EXPECT_EQ(first.status, 200);
  EXPECT_THAT(first.body, HasSubstr("path=/secure\n"));
  EXPECT_THAT(first.body, HasSubstr("body=payload"));
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.new_connections, 0);
}

TEST_F(HttpServerTlsTest, PlainHttpOnATlsPortIsClosed) {
  ServerOptions options = TlsServerOptions();
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));

  EXPECT_TRUE(client.WaitClosed());
  EXPECT_THAT(client.unread(), Not(HasSubstr("HTTP/1.1 200")));
}

TEST_F(HttpServerTlsTest, ServerKeepsServingAfterAFailedHandshake) {
  auto server = StartOrDie(TlsServerOptions(), Echo);
  ASSERT_NE(server, nullptr);
  CurlClient untrusting;  // the system CAs do not know our certificate
  CurlClient trusting;
  trusting.set_ca_file(cert_file_);
  const std::string url = absl::StrCat("https://127.0.0.1:", server->port(), "/");

  CurlResult rejected = untrusting.Get(url);
  CurlResult accepted = trusting.Get(url);

  EXPECT_NE(rejected.code, CURLE_OK);
  EXPECT_EQ(accepted.status, 200);
}

TEST_F(HttpServerTlsTest, BadTlsFilesAreInvalidArgument) {
  const KeyPtr other_key = GenerateKey();
  const std::string other_key_file = dir_.File("other.pem");
  WritePem(other_key_file, nullptr, other_key.get());
  const std::string garbage_file = dir_.File("garbage.pem");
  {
    BIO* bio = BIO_new_file(garbage_file.c_str(), "w");
    ASSERT_NE(bio, nullptr);
    BIO_puts(bio, "not a certificate\n");
    BIO_free(bio);
  }
  const std::vector<TlsOptions> cases = {
      {.cert_file = dir_.File("missing.pem"), .key_file = key_file_},
      {.cert_file = cert_file_, .key_file = dir_.File("missing.pem")},
      {.cert_file = garbage_file, .key_file = key_file_},
      {.cert_file = cert_file_, .key_file = garbage_file},
      {.cert_file = cert_file_, .key_file = other_key_file},
  };

  for (const TlsOptions& tls : cases) {
    ServerOptions options = LocalOptions();
    options.tls = tls;

    EXPECT_THAT(Server::Start(options, Echo), StatusIs(absl::StatusCode::kInvalidArgument))
        << tls.cert_file << " " << tls.key_file;
  }
}

}  // namespace
}  // namespace discovery::http
