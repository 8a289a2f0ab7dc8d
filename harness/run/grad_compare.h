// `parity compare --grad BASE TARGET`: the gradients of two gradient dumps of the same model,
// inputs and loss (HF and an engine's training backward, golden/README.md "Gradients"), compared
// row by row in backward order, beside the forward compare of the same pair (run/compare.h).
//   rows          the loss value, every /grad_hooks key and every /grads parameter either dump
//                 holds, named as `parity check --grad` names them;
//   refused       (InputError, exit 2) a dump without gradients, or losses that differ (kind,
//                 weights or labels): their gradients would answer different questions;
//   one side      a gradient one dump has and the other lacks (absent or exactly zero) fails,
//                 naming the side that has it, unless a [[one_side]] entry allows an absent one;
//   noise floor   the built-in [grad.compare] default gates each row against the gradient compare
//                 floor (run/compare_floor.h: each side's forward and backward, at its own run
//                 precision, routed as its dump routed), with a fixed fallback where none exists;
//   three-way     each side's own `grad.isolated` check (run/three_way.h): which side's backward
//                 departs from the reference's.
#pragma once

#include <string_view>

#include "run/check.h"
#include "run/compare.h"

namespace parity::harness {

// Throws InputError (before any row) for a dump without gradients or for different losses; the
// caller has checked the model and the inputs (run_compare does).
CheckReport run_grad_compare(const Fixture& base, const Fixture& target, const Budget& budget,
                             const CompareOptions& options);

// InputError unless both dumps hold gradients, of the same model and inputs (compare.h), and of
// the same loss on the same tokens; in that order, so the first message is the plainest.
// command: how messages name the run ("compare --grad", "grad-audit").
void check_gradient_pair(const Fixture& base, const Fixture& target, std::string_view command = "compare --grad");

}  // namespace parity::harness
