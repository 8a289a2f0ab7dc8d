// `parity grad-audit`: which parameters learn. For every trainable parameter of a gradient dump,
// whether it receives a gradient on each side, the gradient norms and their ratio; for every
// router, its status in words. The sides: HF's dump and the reference's own backward from the
// dump's loss (one dump, routed as HF routed), or two dumps (HF and an engine's training backward).
// Fails: a parameter that learns on one side and gets no gradient (absent, or exactly zero) on the
// other, a non-finite, empty, mis-shaped or non-floating gradient, a norm ratio outside its band,
// two gradients whose norms agree but which point apart (rel_l2 beyond the band: a sign flip, a
// transposed matrix); a budget entry that matches nothing; a router whose top-k weights get a
// gradient on one side only. The band comes from the noise
// floor: two gradients within rel_l2 r of each other have norms within 1 ± r of each other, so a
// parameter whose gradient is within its [grad.chained] (one dump) or [grad.compare] (two) limit
// has its norm ratio within that limit of 1; a norm ratio outside it is a learning rate the target
// silently rescales. A LoRA target audit reads the same rows: a router that learns under HF and is
// frozen on the engine shows here first.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gate/budget.h"
#include "io/fixture.h"
#include "run/check.h"
#include "weights.h"

namespace parity::harness {

struct AuditSide {
  bool present = false;      // the side holds a gradient for it
  bool learns = false;       // present, and not all zero
  double norm = 0;           // ‖gradient‖₂ (0 when absent)
  int64_t nonfinite = 0;     // NaN/Inf elements
};

struct AuditRow {
  std::string param;
  AuditSide base, target;
  std::optional<double> ratio;  // ‖target‖ / ‖base‖, when both learn and are finite
  std::optional<double> rel_l2, cosine;  // target against base, when both are present, finite and of one shape
  std::optional<double> band;   // the norm ratio may lie within 1 ± band
  std::string band_rule;        // where the band comes from ("default", "b.toml:3", "noise floor 2.1e-5 x 8")
  Status status = Status::kFail;
  std::string message;          // why it failed, or a note ("frozen on both sides")
};

struct RouterStatus {
  std::string router;           // the router module ("model.layers.3.mlp.gate")
  int64_t layer = -1;
  std::vector<std::string> params;
  std::optional<bool> base_through_top_k, target_through_top_k;  // a gradient reaches its top_k_weights
  bool matches = false;          // every parameter row of the router passes
  std::string sentence;          // "layer 3 router: learnable through top_k_weights, ‖∇proj.weight‖ = 2.1e-02, matches HF"
};

struct GradAudit {
  std::string base, target;      // paths; target "" when the reference is the target side
  std::string base_side = "HF", target_side = "reference";
  std::string budget_source;
  std::vector<AuditRow> rows;    // parameters, sorted by name
  std::vector<RouterStatus> routers;
  std::vector<std::string> problems;  // each fails the audit: stale budget entries, routers, an empty audit
  std::vector<std::string> notes;

  bool passed() const;
  int64_t count(Status s) const;
};

// `target`: nullptr audits the reference's own backward against the dump (one dump).
// `weights`: what the reference runs with (else each dump's own /weights).
GradAudit audit_gradients(const Fixture& base, const Fixture* target, const Budget& budget, const WeightSource* weights);

}  // namespace parity::harness
