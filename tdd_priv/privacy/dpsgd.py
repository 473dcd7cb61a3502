"""The DP-SGD baseline: the evaluation heads trained directly on the private embeddings.

Every DP synthetic set is compared with this: the same head architectures (`tdd_priv.heads`),
trained on the real private training set by opacus (Poisson sampling at rate q, per-example
clipping to C, Gaussian noise σ·C on each step's sum), with σ calibrated so that the whole
training run (epochs × steps per epoch releases) spends at most the target (ε, δ) under RDP.
Each trained model is one (ε, δ)-DP release on its own; the baseline models are not released,
only their test accuracies (which, like all utility numbers, are outside the guarantee).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.grad_sample.gsm_base import (
    AbstractGradSampleModule,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tdd_priv.evaluate import HeadScores, LabeledTexts, ModelScore, Utility, score_predictions
from tdd_priv.finetune import (
    DEFAULT_FINETUNE,
    FineTuned,
    FinetuneSettings,
    load_classifier,
    subsample_rows,
    tokenize,
)
from tdd_priv.heads import LabeledArrays, build_head, predict
from tdd_priv.privacy.calibration import PlannedMechanism, calibrate_noise, check_delta
from tdd_priv.privacy.ledger import AccountingError, MechanismRecord, compute_epsilon
from tdd_priv.seeding import derive_seed, torch_generator

__all__ = [
    "DEFAULT_DPSGD",
    "DEFAULT_DP_FINETUNE",
    "DPFinetuneResult",
    "DPFinetuneTraining",
    "DPSGDResult",
    "DPSGDTraining",
    "dp_finetune_scores",
    "dpsgd_plan",
    "dpsgd_trajectory",
    "dpsgd_utility",
    "train_dp_finetune",
    "train_dpsgd",
]

MECHANISM_NAME = "dp_sgd"


@dataclass(frozen=True)
class DPSGDTraining:
    """DP-SGD settings (public hyperparameters; choosing them costs no privacy here).

    `batch_size`: expected batch size B; the Poisson sample rate is q = 1 / ceil(n / B), as opacus
    derives it. `epochs`: passes of ceil(n / B) steps each. `max_grad_norm`: clip norm C (the head
    inputs are unit-norm embeddings, so C = 1 clips little). `optimizer`: Adam or SGD with
    momentum, `learning_rate` for it. `grad_sample_mode`: how opacus gets per-example gradient
    norms: "ghost" (ghost clipping: norms without materialising per-example gradients, ~30x
    faster for the MLP head) or "hooks" (materialised per-example gradients); same result.
    """

    epochs: int = 20
    batch_size: int = 1024
    max_grad_norm: float = 1.0
    # Chosen on Davidson's dev split with the teacher's tuning budget (bench/tune.py).
    learning_rate: float = 0.1
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    grad_sample_mode: Literal["ghost", "hooks"] = "ghost"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self}")
        _check_clipping(self.max_grad_norm, self.grad_sample_mode)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid optimizers: adam, sgd")


def _check_clipping(max_grad_norm: float, grad_sample_mode: str) -> None:
    """The checks every DP-SGD setting shares: a finite clip norm C > 0, a known opacus mode."""
    if not max_grad_norm > 0 or math.isinf(max_grad_norm):
        raise ValueError(f"max_grad_norm must be finite and > 0, got {max_grad_norm}")
    if grad_sample_mode not in ("ghost", "hooks"):
        raise ValueError(
            f"unknown grad_sample_mode {grad_sample_mode!r}; valid modes: ghost, hooks"
        )


DEFAULT_DPSGD = DPSGDTraining()


@dataclass(frozen=True)
class DPSGDResult:
    """A head trained with DP-SGD and the mechanism it spent (σ, q, steps)."""

    model: nn.Module
    record: MechanismRecord
    delta: float

    @property
    def epsilon(self) -> float:
        """ε of this training run by the RDP accountant (<= the target it was calibrated to)."""
        return compute_epsilon([self.record], delta=self.delta)


class _Rows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(x, y) rows whose batches are gathered with one index operation, not row by row.

    `__getitems__` returns the batch already stacked, so the loader's collate is the identity;
    an empty index list gives (0, d) and (0,) tensors, which the loop below handles.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64, device=self.x.device)
        return [self.x[index], self.y[index]]


def _stacked(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


@lru_cache(maxsize=64)
def _noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """σ for `steps` DP-SGD steps at rate q; cached because every baseline model shares it."""
    plan = [PlannedMechanism(MECHANISM_NAME, sample_rate, steps)]
    return calibrate_noise(target_epsilon=epsilon, delta=delta, plan=plan)


def _optimizer(model: nn.Module, training: DPSGDTraining) -> torch.optim.Optimizer:
    if training.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=training.learning_rate)
    return torch.optim.SGD(
        model.parameters(), lr=training.learning_rate, momentum=training.momentum
    )


def _private_engine() -> PrivacyEngine:
    with warnings.catch_warnings():
        # opacus warns that secure_mode is off. It must be: secure mode draws from /dev/urandom and
        # refuses a seeded generator, and a seed must fix the whole run (DESIGN, convention 4).
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        return PrivacyEngine(accountant="rdp", secure_mode=False)


def _private_fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    batch_size: int,
    epochs: int,
    grad_sample_mode: str,
    seed: int,
    on_epoch: Callable[[nn.Module], None] | None = None,
) -> tuple[nn.Module, MechanismRecord]:
    """Train `model` in place with opacus DP-SGD; returns the plain module and what it spent.

    Poisson batches at q = 1 / ceil(n / B), clipping to C, noise σ·C, `epochs` × ceil(n / B)
    steps; `on_epoch(model)` sees the model after every epoch (trajectory matching stores it).
    The model, x and y share one device; the Poisson sampler draws on the CPU (opacus samples
    there) and the noise on that device (opacus draws it beside the gradients).
    """
    device = x.device
    loader = DataLoader(
        _Rows(x, y),
        batch_size=min(batch_size, len(x)),
        collate_fn=_stacked,
        generator=torch_generator(seed, "dp_sgd", "poisson"),
    )
    sample_rate = 1.0 / len(loader)
    steps = epochs * len(loader)
    engine = _private_engine()
    criterion = nn.CrossEntropyLoss()
    with warnings.catch_warnings():
        # opacus's per-sample hooks are full backward hooks; torch warns that they fire with
        # respect to module outputs when the inputs (the embeddings) need no gradient. That is
        # what opacus relies on: activations come from the forward hook and output gradients
        # from this one, so the warning carries no information here.
        warnings.filterwarnings(
            "ignore", message="Full backward hook is firing", category=UserWarning
        )
        private = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            poisson_sampling=True,
            noise_generator=torch_generator(seed, "dp_sgd", "noise", device=device),
            grad_sample_mode=grad_sample_mode,
        )
        if grad_sample_mode == "ghost":
            private_model, private_optimizer, private_criterion, private_loader = private
        else:
            private_model, private_optimizer, private_loader = private
            private_criterion = criterion
        private_model.train()
        for _ in range(epochs):
            for batch_x, batch_y in private_loader:
                private_optimizer.zero_grad(set_to_none=True)
                logits = private_model(batch_x)
                # An empty Poisson batch still takes a (noise-only) step, so the number of steps
                # never depends on who is in the data; its zero loss keeps the graph connected.
                empty = len(batch_y) == 0
                loss = logits.sum() * 0.0 if empty else private_criterion(logits, batch_y)
                loss.backward()
                private_optimizer.step()
            if on_epoch is not None:
                on_epoch(model)
    record = MechanismRecord(MECHANISM_NAME, noise_multiplier, sample_rate, steps)
    spent = engine.accountant.history
    if spent != [record.history_entry]:
        raise AccountingError(f"opacus accounted {spent}, but the plan was {record.history_entry}")
    if not isinstance(private_model, AbstractGradSampleModule):
        raise TypeError(f"opacus returned {type(private_model).__name__}, not a GradSampleModule")
    trained = private_model.to_standard_module()
    trained.eval()
    return trained, record


def dpsgd_plan(
    n: int, *, batch_size: int, epochs: int, name: str = MECHANISM_NAME
) -> PlannedMechanism:
    """The mechanism `_private_fit` will spend on n rows (opacus's q = 1 / ceil(n / B))."""
    steps_per_epoch = math.ceil(n / min(batch_size, n))
    return PlannedMechanism(name, 1.0 / steps_per_epoch, epochs * steps_per_epoch)


def train_dpsgd(
    head: str,
    data: LabeledArrays,
    *,
    epsilon: float,
    delta: float,
    seed: int,
    training: DPSGDTraining = DEFAULT_DPSGD,
    device: torch.device | str = "cpu",
) -> DPSGDResult:
    """Train a fresh `head` on `data` (real private embeddings, hard labels) with DP-SGD, on
    `device` (the model stays there).

    σ is calibrated so that all epochs × steps together spend at most (ε, δ) by RDP;
    `epsilon = math.inf` trains with clipping but no noise. Deterministic given `seed` (on a
    given device): the head init, the Poisson batches and the noise each come from their own
    seeded generator.
    """
    n = len(data.x)
    check_delta(delta, n)
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)).to(device)
    y = torch.from_numpy(data.labels).to(device)
    model = build_head(
        head,
        dim=x.shape[1],
        classes=data.num_classes,
        generator=torch_generator(seed, "head", head, device=device),
    )
    plan = dpsgd_plan(n, batch_size=training.batch_size, epochs=training.epochs)
    noise_multiplier = _noise_multiplier(float(epsilon), float(delta), plan.sample_rate, plan.steps)
    trained, record = _private_fit(
        model,
        _optimizer(model, training),
        x,
        y,
        noise_multiplier=noise_multiplier,
        max_grad_norm=training.max_grad_norm,
        batch_size=training.batch_size,
        epochs=training.epochs,
        grad_sample_mode=training.grad_sample_mode,
        seed=seed,
    )
    return DPSGDResult(trained, record, delta)


def dpsgd_trajectory(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> tuple[list[torch.Tensor], MechanismRecord]:
    """An expert for trajectory matching, trained with plain DP-SGD (no momentum) at a given σ:
    its flat parameters at the start and after every epoch, and the mechanism it spent."""

    def flat(module: nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).clone()

    trajectory = [flat(model)]
    _, record = _private_fit(
        model,
        torch.optim.SGD(model.parameters(), lr=learning_rate),
        x,
        y,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        batch_size=batch_size,
        epochs=epochs,
        grad_sample_mode="hooks",
        seed=seed,
        on_epoch=lambda module: trajectory.append(flat(module)),
    )
    return trajectory, record


def dpsgd_utility(
    train: LabeledArrays,
    test: LabeledArrays,
    *,
    heads: Sequence[str],
    seeds: int,
    seed: int,
    epsilon: float,
    delta: float,
    training: DPSGDTraining = DEFAULT_DPSGD,
    label: str = "dp-sgd",
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> Utility:
    """Like `tdd_priv.evaluate.evaluate`, with each model trained by DP-SGD on `train` at (ε, δ).

    Same heads, same per-model seeds (`derive_seed(seed, "model", i)`), same test metrics, so
    `utility.dp_sgd` lines up with `utility.synthetic` model for model.
    """
    test_labels = test.labels
    jobs = [(head, i) for head in heads for i in range(seeds)]
    scores: dict[str, list[ModelScore]] = {head: [] for head in heads}
    for head, i in tqdm(jobs, desc=label, unit="model", disable=not progress, leave=False):
        model_seed = derive_seed(seed, "model", i)
        result = train_dpsgd(
            head,
            train,
            epsilon=epsilon,
            delta=delta,
            seed=model_seed,
            training=training,
            device=device,
        )
        predicted = predict(result.model, test.x)
        scores[head].append(score_predictions(test_labels, predicted, test.num_classes))
    return Utility(tuple(HeadScores(head, tuple(scores[head])) for head in heads))


# --- DP-SGD fine-tuning of a transformer on the private texts -----------------------------------


@dataclass(frozen=True)
class DPFinetuneTraining:
    """DP-SGD fine-tuning settings (public, fixed in advance; docs/distillation.md says why).

    Only the top `trainable_layers` transformer layers and everything above them (pooler,
    classification head) are trained; the embeddings and lower layers stay as pretrained.
    Per-example gradients of all 22M MiniLM parameters (most of them the word-embedding matrix)
    would cost B × 88 MB per step; the top layer + head are ~1.9M, and opacus's BERT tutorial
    fine-tunes the same part. `batch_size`: expected Poisson batch B (larger batches average
    the noise σ·C over more examples); `epochs` passes of ceil(n / B) steps; `max_grad_norm`:
    clip norm C; Adam at a constant `learning_rate`; `max_length` tokens per text.
    `grad_sample_mode`: "ghost" (per-example norms without per-example gradients; opacus falls
    back to materialised gradients for layers it cannot ghost-clip) or "hooks".
    """

    trainable_layers: int = 1
    epochs: int = 3
    batch_size: int = 64
    max_grad_norm: float = 1.0
    learning_rate: float = 5e-4
    max_length: int = 128
    grad_sample_mode: Literal["ghost", "hooks"] = "ghost"

    def __post_init__(self) -> None:
        if self.trainable_layers < 0 or min(self.epochs, self.batch_size) < 1:
            raise ValueError(
                f"trainable_layers must be >= 0, epochs and batch_size >= 1, got {self}"
            )
        _check_clipping(self.max_grad_norm, self.grad_sample_mode)
        if not 0 < self.learning_rate < math.inf:
            raise ValueError(f"learning_rate must be finite and > 0, got {self.learning_rate}")


DEFAULT_DP_FINETUNE = DPFinetuneTraining()


@dataclass(frozen=True)
class DPFinetuneResult:
    """A classifier fine-tuned with DP-SGD, what it spent, and what it trained.

    `rows`: how many private texts it trained on (a seeded subsample when the set exceeded the
    cap); `trainable_parameters`: how many parameters DP-SGD updated (the rest stayed frozen).
    """

    tuned: FineTuned
    record: MechanismRecord
    delta: float
    rows: int
    trainable_parameters: int

    @property
    def epsilon(self) -> float:
        """ε of this training run by the RDP accountant (<= the target it was calibrated to)."""
        return compute_epsilon([self.record], delta=self.delta)


class _PackedClassifier(nn.Module):
    """A sequence classifier fed one (b, 2, T) int64 tensor: token ids and attention mask
    stacked, so opacus's row-wise loader and per-example hooks see one tensor per example.
    Each batch is cut to its longest text (rows are right-padded), so padding costs little."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        rows = len(packed)
        if rows == 0:
            # An empty Poisson batch (a noise-only step): Hugging Face models cannot run on zero
            # rows, so one blank row goes through and its logits are dropped; its gradient and
            # so its per-example norm are zero, and the step adds only noise.
            packed = torch.ones((1, 2, 1), dtype=packed.dtype, device=packed.device)
        ids, mask = packed[:, 0], packed[:, 1]
        width = max(1, int(mask.sum(dim=1).max()))
        logits: torch.Tensor = self.classifier(
            input_ids=ids[:, :width], attention_mask=mask[:, :width]
        ).logits
        return logits[:rows]


def _train_top(classifier: nn.Module, layers: int) -> int:
    """Freeze all but the top `layers` transformer layers and the modules above them (pooler,
    head): the parameters from the first of those layers on, in registration order (with
    `layers` 0, those after the last layer).

    The transformer layers are the longest `nn.ModuleList` of the model. Returns the number of
    trainable parameters.
    """
    stacks = [m for m in classifier.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise ValueError(f"{type(classifier).__name__} has no list of transformer layers")
    stack = max(stacks, key=len)
    parameters = list(classifier.parameters())
    positions = {id(p): i for i, p in enumerate(parameters)}
    if layers > 0:
        start = positions[id(next(stack[max(0, len(stack) - layers)].parameters()))]
    else:
        start = 1 + max(positions[id(p)] for p in stack.parameters())
    for i, parameter in enumerate(parameters):
        parameter.requires_grad_(i >= start)
    return sum(p.numel() for p in parameters[start:])


def train_dp_finetune(
    texts: Sequence[str],
    labels: np.ndarray,
    *,
    num_classes: int,
    epsilon: float,
    delta: float,
    seed: int,
    settings: FinetuneSettings = DEFAULT_FINETUNE,
    training: DPFinetuneTraining = DEFAULT_DP_FINETUNE,
) -> DPFinetuneResult:
    """Fine-tune `settings.model` on private (texts, labels (n,)) with opacus DP-SGD at (ε, δ).

    More than `settings.max_train_texts` texts are replaced by a seeded subsample of that many
    (DP-SGD then runs on it; δ must lie below 1/rows). σ is calibrated so that all epochs ×
    steps spend at most (ε, δ) by RDP, and opacus's accountant must record exactly that plan.
    Deterministic given `seed` (head init, Poisson batches and noise from their own generators).
    """
    rows = subsample_rows(len(texts), settings.max_train_texts, seed=seed)
    if rows is not None:
        texts, labels = [texts[i] for i in rows], np.asarray(labels)[rows]
    n = len(texts)
    check_delta(delta, n)
    classifier, tokenizer = load_classifier(
        settings.model,
        num_classes,
        generator=torch_generator(seed, "dp_finetune", "init"),
        device=torch.device("cpu"),
    )
    trainable = _train_top(classifier, training.trainable_layers)
    finetune = replace(settings.training, max_length=training.max_length)
    tokens = tokenize(tokenizer, texts, finetune)
    inputs = tokens.batch(range(n), torch.device("cpu"))  # (n, longest) each
    packed = torch.stack([inputs["input_ids"], inputs["attention_mask"]], dim=1)
    model = _PackedClassifier(classifier)
    plan = dpsgd_plan(n, batch_size=training.batch_size, epochs=training.epochs)
    noise_multiplier = _noise_multiplier(float(epsilon), float(delta), plan.sample_rate, plan.steps)
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=training.learning_rate
    )
    trained, record = _private_fit(
        model,
        optimizer,
        packed,
        torch.tensor(np.asarray(labels, dtype=np.int64)),
        noise_multiplier=noise_multiplier,
        max_grad_norm=training.max_grad_norm,
        batch_size=training.batch_size,
        epochs=training.epochs,
        grad_sample_mode=training.grad_sample_mode,
        seed=seed,
    )
    assert isinstance(trained, _PackedClassifier)
    tuned = FineTuned(
        trained.classifier.to(settings.device),
        tokenizer,
        finetune,
        settings.device,
        num_classes,
        record.steps,
    )
    return DPFinetuneResult(tuned, record, delta, n, trainable)


def dp_finetune_scores(
    train: LabeledTexts,
    test: LabeledTexts,
    *,
    num_classes: int,
    seeds: int,
    seed: int,
    epsilon: float,
    delta: float,
    settings: FinetuneSettings = DEFAULT_FINETUNE,
    training: DPFinetuneTraining = DEFAULT_DP_FINETUNE,
    name: str = "finetune",
) -> HeadScores:
    """`seeds` classifiers, each fine-tuned with DP-SGD on the private `train` texts at (ε, δ)
    and scored on `test`; the note says what was trained, on how many texts, at what σ."""
    scores: list[ModelScore] = []
    result = None
    for i in range(seeds):
        model_seed = derive_seed(seed, "model", i)
        result = train_dp_finetune(
            train.texts,
            train.labels,
            num_classes=num_classes,
            epsilon=epsilon,
            delta=delta,
            seed=model_seed,
            settings=settings,
            training=training,
        )
        predicted = result.tuned.predict(test.texts)
        scores.append(score_predictions(np.asarray(test.labels), predicted, num_classes))
    assert result is not None
    record = result.record
    subsample = (
        f" on a seeded subsample of {result.rows} of the {len(train.texts)} members"
        if result.rows < len(train.texts)
        else f" on all {result.rows} members"
    )
    note = (
        f"DP-SGD fine-tuning (opacus, RDP) at ε = {epsilon:g}, δ = {delta:.3g}{subsample}: "
        f"the top {training.trainable_layers} transformer layer(s), pooler and classifier "
        f"({result.trainable_parameters:,} parameters; the rest frozen), σ = "
        f"{record.noise_multiplier:.3g}, q = {record.sample_rate:.3g}, {record.steps} steps, "
        f"clip C = {training.max_grad_norm:g}; not released"
    )
    return HeadScores(name, tuple(scores), note=note)
