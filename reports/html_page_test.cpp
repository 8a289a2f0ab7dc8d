#include "html_page.h"

#include <doctest/doctest.h>

namespace parity::reports::html {

TEST_CASE("esc: every character that could open markup or close an attribute is escaped") {
  CHECK(esc("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;");
  CHECK(esc("a\" onmouseover='x' & b") == "a&quot; onmouseover=&#39;x&#39; &amp; b");
  CHECK(esc(nlohmann::json("<b>")) == "&lt;b&gt;");
  CHECK(esc(nlohmann::json(3)) == "3");
  CHECK(esc(nlohmann::json()) == "");
}

TEST_CASE("num: three significant digits, integers as integers, JSON null (NaN/Inf) as NaN") {
  CHECK(num(1.23456e-7) == "1.23e-07");
  CHECK(num(0.0) == "0");
  CHECK(num(42.0) == "42");
  CHECK(num(nlohmann::json()) == "NaN");
  CHECK(element(nlohmann::json(0.296568692)) == "0.296568692");
  CHECK(sort_key(nlohmann::json()) == "NaN");
}

TEST_CASE("page: self-contained, and only the page's own script may run") {
  const std::string html = page("<title>", "<p>body</p>");
  CHECK(html.find("<title>&lt;title&gt;</title>") != std::string::npos);
  CHECK(html.find("default-src 'none'") != std::string::npos);  // no network, no external assets
  CHECK(html.find("http://") == std::string::npos);
  CHECK(html.find("https://") == std::string::npos);
  const size_t nonce = html.find("script-src 'nonce-");
  REQUIRE(nonce != std::string::npos);
  const std::string value = html.substr(nonce + 18, 24);
  CHECK(html.find("<script nonce=\"" + value + "\">") != std::string::npos);
  CHECK(page("t", "") != page("t", ""));  // a fresh nonce per page
}

}  // namespace parity::reports::html
