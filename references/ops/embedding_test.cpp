#include "embedding.h"

#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

TEST_CASE("embedding: copies the table row of every id, keeping the ids' shape") {
  const Weight table{{4, 3}, {0, 1, 2, 10, 11, 12, 20.5f, 21, 22, -30, 31, 32.25f}};
  const IndexArray ids{{2, 2}, {2, 0, 3, 3}};
  const Array out = embedding(ids, table);
  REQUIRE(out.shape == Shape{2, 2, 3});
  CHECK(out.data == std::vector<double>{20.5, 21, 22, 0, 1, 2, -30, 31, 32.25, -30, 31, 32.25});
}

TEST_CASE("embedding: random ids over an odd table give their rows exactly") {
  std::mt19937 rng(71);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  for (int64_t vocab : {1, 5, 17})
    for (int64_t hidden : {1, 3, 13}) {
      CAPTURE(vocab);
      CAPTURE(hidden);
      Weight table{{vocab, hidden}, std::vector<float>(static_cast<size_t>(vocab * hidden))};
      for (float& x : table.data) x = value(rng);
      std::uniform_int_distribution<int64_t> id(0, vocab - 1);
      IndexArray ids{{2, 7}, {}};
      for (int i = 0; i < 14; ++i) ids.data.push_back(id(rng));
      const Array out = embedding(ids, table);
      REQUIRE(out.shape == Shape{2, 7, hidden});
      int bad = 0;
      for (int64_t t = 0; t < 14; ++t)
        for (int64_t h = 0; h < hidden; ++h)
          bad += out.data[t * hidden + h] != static_cast<double>(table.data[ids.data[t] * hidden + h]);
      CHECK(bad == 0);
    }
}

TEST_CASE("embedding: throws naming an id outside the vocabulary and on a table that is not 2-D") {
  const Weight table{{4, 2}, std::vector<float>(8, 1.0f)};
  CHECK_THROWS_WITH_AS(embedding(IndexArray{{1, 3}, {0, 4, 1}}, table), doctest::Contains("token id 4"), Error);
  CHECK_THROWS_WITH_AS(embedding(IndexArray{{1, 2}, {1, -1}}, table), doctest::Contains("token id -1"), Error);
  CHECK_NOTHROW(embedding(IndexArray{{1, 2}, {3, 0}}, table));
  CHECK_THROWS_AS(embedding(IndexArray{{1, 1}, {0}}, Weight{{8}, table.data}), Error);
}

TEST_CASE("embedding backward: each token's gradient lands on its row, repeated ids add up") {
  std::mt19937 rng(53);
  const IndexArray ids{{2, 3}, {1, 3, 1, 0, 3, 3}};
  const Weight table = test::random_weight({5, 4}, rng);
  const Array dy = test::random_array({2, 3, 4}, rng);
  Array dtable({5, 4});
  embedding_backward(ids, dy, dtable);
  CHECK(test::gradient_close(dtable.data, test::numeric_weight_gradient([&](const Weight& v) { return embedding(ids, v); }, table, dy), 1e-8));
  for (int64_t i = 0; i < 4; ++i) CHECK(dtable.data[static_cast<size_t>(2 * 4 + i)] == 0.0);  // id 2 never occurs
  CHECK_THROWS_WITH(embedding_backward(IndexArray{{1, 1}, {9}}, test::random_array({1, 1, 4}, rng), dtable),
                    doctest::Contains("token id 9"));
}

TEST_CASE("embedding backward: the padding row gets no gradient, every other row its tokens'") {
  std::mt19937 rng(54);
  const IndexArray ids{{1, 5}, {3, 0, 3, 1, 0}};
  const Array dy = test::random_array({1, 5, 3}, rng);
  Array all({4, 3}), padded({4, 3});
  embedding_backward(ids, dy, all);
  embedding_backward(ids, dy, padded, /*padding_idx=*/3);
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t i = 0; i < 3; ++i) {
      const size_t at = static_cast<size_t>(r * 3 + i);
      CHECK(padded.data[at] == (r == 3 ? 0.0 : all.data[at]));
    }
  CHECK(all.data[9] != 0.0);  // row 3 occurs twice: without padding_idx it has a gradient
}

}  // namespace parity::ops
