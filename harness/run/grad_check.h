// `parity check --grad`: gate a gradient fixture's backward (golden/README.md "Gradients") on the
// budget's [grad.isolated] / [grad.chained] sections (docs/budgets.md "Gradients").
//   grad.isolated  each module's backward from HF's own inputs and HF's gradient of its outputs
//                  (ReferenceModel::replay_backward): its input gradients against /grad_hooks, and
//                  each parameter's gradient against /grads, from the smallest modules that use it
//                  (their shares summed: a tied embedding and head);
//   grad.chained   the reference's own forward, routed as HF routed, and its backward from the
//                  fixture's loss (ReferenceModel::forward_backward): the loss, every parameter's
//                  gradient and the output gradient of each module the backward passes.
// Rows are named by what they are the gradient of (a hook key, or an HF parameter name) and listed
// in backward order. Fail closed: a gradient on one side and none (absent or exactly zero) on the
// other, a parameter gradient or (isolated) an input gradient of the fixture the reference does not
// produce, a module without a backward, NaN/Inf, a shape or kind mismatch, and an empty comparison
// each fail the run. Chained compares the output gradients of the modules its backward passes; the
// fixture's other output gradients are the isolated run's inputs, not its rows.
#pragma once

#include "models/model.h"
#include "run/check.h"

namespace parity::harness {

// run_check's gradient modes (options.mode: budget.h is_grad_mode): fills the report's hooks,
// problems and notes. InputError for a fixture without gradients.
// floor_model: the second opinion (run/noise_floor.h) whose chained gradients give each row's
// noise floor; nullptr: none.
void check_gradients(const Fixture& fixture, const ReferenceModel& model, const ReferenceModel* floor_model,
                     const Budget& budget, const CheckOptions& options, CheckReport& report);

// The fixture's /loss as the reference computes it; InputError for a malformed one (a missing or
// mistyped tensor, weights of the wrong shape or all zero, labels that are not the input ids).
Loss fixture_loss(const Fixture& fixture, const ForwardInputs& inputs);

// Every gradient name of the fixture a --hooks glob or a skip may select: /grad_hooks keys and
// /grads names (empty without gradients).
std::vector<std::string> gradient_names(const Fixture& fixture);

}  // namespace parity::harness
