"""Type stubs of the C++ extension (harness/python/bindings/); docstrings: help(parity.<name>).

Every argument is checked where it enters (bindings/args.h): a wrong Python type or array dtype is a
TypeError naming the argument ("ref: expected float32 or float64, got int32"); a value the call
cannot use (a bad config, path, name, shape, mask value, token id) is an InputError naming it."""

from os import PathLike
from typing import Any, Literal, TypedDict

import numpy as np
import numpy.typing as npt

ArrayLike = npt.NDArray[Any]  # numpy arrays, or tensors through __array__ (CPU torch tensors: no copy)
Result = dict[str, Any]       # the dict the CLI's --json writes, parsed
_Path = str | bytes | PathLike[str]  # a file (a directory, an empty path or a NUL in it: InputError)

class Error(RuntimeError):
    """A failure that is not the caller's (the reference or a file reader failing on good input)."""

class InputError(ValueError):
    """The caller's mistake: a bad config, path, name, shape or value; the message names it."""

class Fixture:
    def __init__(self, path: _Path) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def meta(self) -> dict[str, int | float | str]: ...
    @property
    def config(self) -> dict[str, Any]: ...
    def names(self, group: str) -> list[str]: ...
    def has(self, group: str, name: str) -> bool: ...
    def read(self, group: str, name: str) -> np.ndarray: ...

class Limit:
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...
    def allows(self, measured: float) -> bool: ...

class Budget:
    @staticmethod
    def load(path: _Path, run_dtype: str | None = ...) -> Budget: ...
    @staticmethod
    def parse(toml_text: str, source: str = ..., run_dtype: str | None = ...) -> Budget: ...
    @staticmethod
    def builtin(run_dtype: Literal["float32", "bfloat16"]) -> Budget: ...
    @property
    def source(self) -> str: ...
    @property
    def near_tie_rel(self) -> float: ...
    def limit_for(self, mode: Literal["isolated", "chained", "compare"], hook: str, top_k: bool = ...) -> Limit: ...

def compare_tensors(ref: ArrayLike, hf: ArrayLike) -> dict[str, Any]: ...
def logprob_metrics(train: ArrayLike, rollout: ArrayLike, loss_mask: ArrayLike | None = ..., *,
                    token_ids: ArrayLike | None = ..., seq_lens: ArrayLike | None = ..., is_threshold: float = ...,
                    veto_threshold: float = ..., catastrophic_threshold: float = ...,
                    catastrophic_top: int = ...) -> dict[str, Any]: ...
def gate_logprobs(train: ArrayLike, rollout: ArrayLike, loss_mask: ArrayLike | None = ..., *,
                  token_ids: ArrayLike | None = ..., seq_lens: ArrayLike | None = ...,
                  budget: _Path | None = ...) -> Result: ...
def logprobs_report(run: _Path, budget: _Path | None = ...) -> Result: ...
def modules(config: dict[str, Any] | Fixture) -> list[str]: ...
def replay(config: dict[str, Any] | Fixture, module: str, inputs: dict[str, ArrayLike],
           weights: dict[str, ArrayLike] | Fixture, precision: Literal["f64", "f32", "bf16"] = ...) -> dict[str, np.ndarray]: ...
def forward(config: dict[str, Any] | Fixture, input_ids: ArrayLike, weights: dict[str, ArrayLike] | Fixture,
            attention_mask: ArrayLike | None = ..., position_ids: ArrayLike | None = ...,
            precision: Literal["f64", "f32", "bf16"] = ...) -> dict[str, np.ndarray]: ...
_Mode = Literal["isolated", "chained"]

def check(fixture: _Path, modes: list[_Mode] | tuple[_Mode, ...] = ..., budget: _Path | None = ...,
          precision: Literal["f64", "f32", "bf16"] | None = ..., hooks: str = ..., weights: _Path | None = ...,
          baseline: _Path | None = ...) -> Result: ...
def check_case(case: _Path, write_baseline: bool = ...) -> Result: ...
def compare(base: _Path, target: _Path, budget: _Path | None = ..., reference: bool = ...,
            weights: _Path | None = ...) -> Result: ...
def diagnose(target: _Path, budget: _Path | None = ...) -> Result: ...
def html_report(result: Result, source: str = ...) -> str: ...

class FirstFailure(TypedDict):
    isolated: str
    chained: str

class ZooFixture(TypedDict):
    file: str      # relative to golden/zoo/
    config: str    # relative to golden/
    seed: int
    batch: int
    seq_len: int
    dtype: Literal["float32", "bfloat16"]

class KnownBug(TypedDict):
    name: str
    family: Literal["olmoe", "gemma4", "any"]
    title: str
    lives_in: str
    source: str
    story: str
    first_failure: FirstFailure
    lives_at: str  # a regex (re.fullmatch)
    fixture: ZooFixture

def known_bugs() -> list[KnownBug]: ...
