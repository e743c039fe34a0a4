"""``DAGMM(compile=True)``: forward, backward and Adam's update as one compiled graph (``CompiledAdamStep``)."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dagmm_lightning.data import InMemoryBatches
from dagmm_lightning.errors import ConfigurationError
from dagmm_lightning.labels import KNOWN_NORMAL, LABELLED_ANOMALY
from dagmm_lightning.models import DAGMM, DAGMMPU, DAGMMVQVAE
from dagmm_lightning.models.compiled_step import CompiledAdamStep
from dagmm_lightning.networks.layers import Dropout, Tanh

from ..callbacks import SavesAtStep

QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)


def tiny_model(variant=DAGMM, **kwargs):
    torch.manual_seed(0)
    defaults = dict(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, dropout=0.0, lr=1e-2)
    return variant(**{**defaults, **kwargs})


@pytest.mark.parametrize("variant", [DAGMM, DAGMMPU])
def test_compiled_step_equals_eager_backward_and_torch_adam(variant):
    torch.manual_seed(5)  # the rows do not depend on which tests ran before
    x, y = torch.rand(64, 6), torch.zeros(64)
    y[:10] = KNOWN_NORMAL  # the positive-unlabeled classifier's labelled rows (its weights are in the objective)
    compiled, eager = tiny_model(variant, lambda_cov=0.005), tiny_model(variant, lambda_cov=0.005)
    for model in (compiled, eager):
        model.model.fit([x])  # the classifier reads the energy under the training-set mixture
    compiled_adam = torch.optim.Adam(compiled.parameters(), lr=1e-2)
    eager_adam = torch.optim.Adam(eager.parameters(), lr=1e-2, fused=True)
    objective = lambda x, y: compiled.training_terms(compiled.model(x), y, None)  # noqa: E731
    step = CompiledAdamStep(compiled.model, objective, compiled_adam)
    torch._dynamo.utils.counters.clear()
    for _ in range(3):
        loss, terms = step(x, y)
        out = eager.model(x)
        eager_loss = sum(t.double() for t in eager.training_terms(out, y, None).values())
        eager_adam.zero_grad()
        eager_loss.backward()
        eager_adam.step()
        assert loss.item() == pytest.approx(eager_loss.item(), rel=1e-5)
        assert set(terms) == {"reconstruction", "energy", "penalty"} | ({"classifier"} if variant is DAGMMPU else set())
    assert not torch._dynamo.utils.counters["graph_break"]  # one graph (PU's mixture check had broken it)
    for a, b in zip(compiled.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        for key in ("step", "exp_avg", "exp_avg_sq"):  # the optimizer's own state, as Adam keeps it
            torch.testing.assert_close(compiled_adam.state[a][key], eager_adam.state[b][key], rtol=1e-3, atol=1e-6)


def test_inference_after_compiled_steps_sees_their_weights():
    # the compiled step writes the weights through one flat buffer (the parameters' version counters stay as
    # they were): the fused inference layers must still fold the new weights, not keep the old ones
    x, y = torch.rand(64, 6), torch.zeros(64)
    model = tiny_model()
    objective = lambda x, y: model.training_terms(model.model(x), y, None)  # noqa: E731
    step = CompiledAdamStep(model.model, objective, torch.optim.Adam(model.parameters(), lr=0.1))
    step(x, y)  # the weights now live in the step's flat buffer
    model.model.fit([x])  # folds the inference plans of these weights
    for _ in range(2):
        step(x, y)
    encoder = model.model.compression.encoder
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), torch.nn.Sequential.forward(encoder, x), rtol=0, atol=1e-6)


def eager_loss(model, x, y) -> float:
    return sum(t.double() for t in model.training_terms(model.model(x), y, None).values()).item()


def test_a_second_model_in_the_process_gets_its_own_graph():
    # the compiled code is cached per function: a second model of the same shapes must not reuse the
    # first one's graph and with it the first one's constants (here lambda_energy), neither when it compiles
    # nor later, when the guards are skipped
    x, y = torch.rand(64, 6), torch.zeros(64)
    models, steps = [], []
    for lambda_energy in (0.1, 5.0):
        model = tiny_model(lambda_energy=lambda_energy)
        objective = lambda x, y, model=model: model.training_terms(model.model(x), y, None)  # noqa: E731
        models.append(model)
        steps.append(CompiledAdamStep(model.model, objective, torch.optim.Adam(model.parameters())))
    for _ in range(2):
        for model, step in zip(models, steps, strict=True):
            expected = eager_loss(model, x, y)
            assert step(x, y)[0].item() == pytest.approx(expected, rel=1e-6)


def test_a_setting_changed_in_place_between_steps_is_seen():
    # past its first call the graph runs without dynamo's guards; a hyperparameter changed in place must
    # still reach it (the step's snapshot of settings), and so must any other attribute after check_guards()
    x, y = torch.rand(64, 6), torch.zeros(64)
    model = tiny_model(lambda_energy=0.1)
    objective = lambda x, y: model.training_terms(model.model(x), y, None)  # noqa: E731
    step = CompiledAdamStep(model.model, objective, torch.optim.Adam(model.parameters()), lambda: dict(model.hparams))
    step(x, y)
    step(x, y)  # guards skipped from here on
    model.hparams.lambda_energy = 5.0
    expected = eager_loss(model, x, y)
    assert step(x, y)[0].item() == pytest.approx(expected, rel=1e-6)
    model.model.mixture.jitter = 0.5  # an attribute the snapshot does not hold: seen once guards are checked
    step.check_guards()
    expected = eager_loss(model, x, y)
    assert step(x, y)[0].item() == pytest.approx(expected, rel=1e-6)


def test_compiled_dropout_drops_a_fraction_p_and_scales_the_rest():
    # inside torch.compile the mask is torch.rand_like(x) >= p, drawn by torch's generator; eagerly the
    # layer is nn.Dropout itself
    layer = Dropout(0.3).train()
    x = torch.ones(2000, 50)
    torch.manual_seed(2)
    out = torch.compile(layer, options={"fallback_random": True})(x)
    torch.manual_seed(2)
    torch.testing.assert_close(out, x * (torch.rand_like(x) >= 0.3) / 0.7)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01  # 100,000 draws: 5 standard deviations is 0.007
    torch.manual_seed(3)
    eager = layer(x)
    torch.manual_seed(3)
    torch.testing.assert_close(eager, torch.nn.functional.dropout(x, 0.3, training=True))


def test_compiled_tanh_is_two_sigmoids_minus_one_and_eager_tanh_is_torchs():
    layer = Tanh()
    x = torch.linspace(-12, 12, 100_001)
    compiled = torch.compile(layer)(x)
    torch.testing.assert_close(compiled, 2.0 * torch.sigmoid(2.0 * x) - 1.0)
    torch.testing.assert_close(compiled, torch.tanh(x), rtol=0, atol=3e-7)
    assert torch.equal(layer(x), torch.tanh(x))


def fit(compile: bool, model=None, labelled_rows: int = 8):
    """Two epochs over 500 rows in batches of 64 (the last one 52 rows), the first ``labelled_rows`` labelled
    as anomalies, a cosine schedule: every path of the compiled step (compiled, eager for labelled rows
    and for the short batch)."""
    torch.manual_seed(1)
    x, y = torch.rand(500, 6), torch.zeros(500)
    y[:labelled_rows] = LABELLED_ANOMALY
    model = model or tiny_model(compile=compile, lr_schedule="cosine")
    trainer = L.Trainer(max_epochs=2, enable_checkpointing=False, **QUIET)
    trainer.fit(model, DataLoader(TensorDataset(x, y, torch.arange(500)), batch_size=64))
    return model, trainer


def test_a_compiled_run_trains_like_an_eager_one():
    (eager, eager_trainer), (compiled, trainer) = fit(False), fit(True)
    assert trainer.global_step == eager_trainer.global_step == 16
    assert compiled.__dict__["_adam_step"].batch_rows == 64  # the full batches went through the graph
    optimizer, eager_optimizer = trainer.optimizers[0], eager_trainer.optimizers[0]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(eager_optimizer.param_groups[0]["lr"])
    for a, b in zip(compiled.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        assert float(optimizer.state[a]["step"]) == 16.0
    assert float(compiled.model.calibration.threshold) == pytest.approx(
        float(eager.model.calibration.threshold), rel=1e-3
    )


def test_several_steps_per_call_train_as_one_step_per_call():
    # steps_per_call > 1: the model takes the batches from Lightning's iterator itself, several per call; the
    # same batches in the same order through the same paths (labelled rows, the short last batch), so the same
    # weights, step count and schedule
    (one, one_trainer) = fit(True)
    (four, trainer) = fit(True, tiny_model(compile=True, lr_schedule="cosine", steps_per_call=4))
    assert trainer.fit_loop.epoch_loop.batch_progress.total.ready == 4  # 8 batches an epoch, 4 a call
    assert one_trainer.fit_loop.epoch_loop.batch_progress.total.ready == 16
    assert "training_step" not in four.__dict__  # the iterator form ends with the fit
    assert trainer.global_step == one_trainer.global_step == 16
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(one_trainer.optimizers[0].param_groups[0]["lr"])
    for a, b in zip(four.parameters(), one.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_several_steps_per_call_stop_at_max_steps_and_validate_as_one_step_per_call():
    torch.manual_seed(1)
    x = torch.rand(640, 6)
    data = DataLoader(TensorDataset(x, torch.zeros(640), torch.arange(640)), batch_size=64)
    val = DataLoader(TensorDataset(x[:128], torch.zeros(128), torch.arange(128)), batch_size=64)
    seen = {}
    for steps_per_call in (1, 4):
        model = tiny_model(compile=True, steps_per_call=steps_per_call)
        calls = seen[steps_per_call] = []
        refit = model.on_validation_epoch_start  # the model's own hook (the refit), kept
        model.on_validation_epoch_start = lambda model=model, calls=calls, refit=refit: [
            calls.append(model.global_step),
            refit(),
        ]
        quiet = {**QUIET, "limit_val_batches": 1.0}
        trainer = L.Trainer(max_steps=25, enable_checkpointing=False, num_sanity_val_steps=0, **quiet)
        trainer.fit(model, data, val)
        assert trainer.global_step == 25  # 10 batches an epoch, 4 a call: stops at 25, not 28
    assert seen[4] == seen[1] == [10, 20]  # validation after every whole epoch


def test_steps_per_call_needs_compile():
    with pytest.warns(UserWarning, match="no effect without compile"):
        tiny_model(steps_per_call=4)
    with pytest.raises(ConfigurationError, match="steps_per_call"):
        tiny_model(compile=True, steps_per_call=0)


def test_a_compiled_run_resumes_where_it_stopped(tmp_path):
    # the weights and Adam's state live in flat buffers while the step runs: a checkpoint must hold them,
    # and a resumed run must take the loaded state up again
    torch.manual_seed(1)
    x = torch.rand(256, 6)
    data = DataLoader(TensorDataset(x, torch.zeros(256), torch.arange(256)), batch_size=64)

    def run(epochs, ckpt_path=None):
        model = tiny_model(compile=True)
        trainer = L.Trainer(max_epochs=epochs, default_root_dir=tmp_path, **QUIET)
        trainer.fit(model, data, ckpt_path=ckpt_path)
        return model, trainer

    whole, _ = run(4)
    _, first = run(2)
    first.save_checkpoint(tmp_path / "half.ckpt")
    resumed, trainer = run(4, tmp_path / "half.ckpt")
    assert trainer.global_step == 16
    for a, b in zip(resumed.parameters(), whole.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    state = trainer.optimizers[0].state
    assert all(float(state[p]["step"]) == 16.0 for p in resumed.parameters())


def test_several_steps_per_call_resume_within_an_epoch_and_validate_at_its_end(tmp_path):
    # Lightning counts calls, the loader batches: the resumed epoch must still end (and validate) as it ran
    torch.manual_seed(1)
    x = torch.rand(256, 6)
    data = InMemoryBatches(x, torch.zeros(256, dtype=torch.long), torch.arange(256), 64, shuffle=True)
    val = InMemoryBatches(x[:64], torch.zeros(64, dtype=torch.long), torch.arange(64), 64, shuffle=False)
    validated = []

    class Validations(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            validated.append(trainer.global_step)

    def run(callbacks, ckpt_path=None):
        model = tiny_model(compile=True, steps_per_call=2, dropout=0.5)
        quiet = {k: v for k, v in QUIET.items() if k != "limit_val_batches"}
        trainer = L.Trainer(
            max_epochs=3, default_root_dir=tmp_path, num_sanity_val_steps=0, callbacks=callbacks, **quiet
        )
        trainer.fit(model, data, val, ckpt_path=ckpt_path)
        return model, trainer

    whole, _ = run([SavesAtStep(tmp_path / "within.ckpt", 6), Validations()])  # after epoch 1's first call
    assert validated == [4, 8, 12]
    validated.clear()
    resumed, trainer = run([Validations()], tmp_path / "within.ckpt")
    assert trainer.global_step == 12 and validated == [8, 12]
    for a, b in zip(resumed.parameters(), whole.parameters(), strict=True):
        torch.testing.assert_close(a, b)


class NaNStep:
    """What a failed Cholesky factor inside the graph gives: a NaN loss and no update."""

    batch_rows = 64

    def accepts(self, x):
        return True

    def __call__(self, x, y):
        return torch.tensor(float("nan"), dtype=torch.float64), {}


def test_a_nan_loss_in_the_graph_reruns_the_step_eagerly():
    eager, _ = fit(False, labelled_rows=0)
    compiled = tiny_model(compile=True, lr_schedule="cosine")
    compiled._compiled_step = lambda optimizer: NaNStep()
    compiled, trainer = fit(True, compiled, labelled_rows=0)
    assert trainer.global_step == 16
    for a, b in zip(compiled.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_cholesky_inside_a_compiled_graph_gives_nan():
    from dagmm_lightning.mixture.gaussian import cholesky_with_jitter

    singular = torch.zeros(2, 3, 3, dtype=torch.float64)
    singular[0] = torch.eye(3)
    eager = cholesky_with_jitter(singular.clone(), 1e-6)  # the retry raises the diagonal: a valid factor
    assert torch.isfinite(eager).all() and (eager.diagonal(dim1=-2, dim2=-1) > 0).all()
    compiled = torch.compile(lambda cov: cholesky_with_jitter(cov, 1e-6), fullgraph=True)(singular.clone())
    torch.testing.assert_close(compiled[0], torch.eye(3, dtype=torch.float64))
    assert torch.isnan(compiled[1]).all()


def test_a_backend_that_cannot_compile_is_a_configuration_error(monkeypatch):
    def failing_compile(function, **kwargs):
        def call(*args, **kw):
            raise torch._dynamo.exc.BackendCompilerFailed(failing_compile, RuntimeError("no C++ compiler"), None)

        return call

    monkeypatch.setattr(torch, "compile", failing_compile)
    with pytest.raises(ConfigurationError, match="no C\\+\\+ compiler.*compile false"):
        fit(True)


def test_a_variant_whose_step_updates_state_refuses_compile():
    with pytest.raises(ConfigurationError, match="compile is not available for DAGMMVQVAE"):
        DAGMMVQVAE(input_dim=6, hidden_dims=(5,), latent_dim=1, compile=True)


class WithSGD(DAGMM):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class WithAdamW(DAGMM):
    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.01)


@pytest.mark.parametrize("variant, name", [(WithSGD, "SGD"), (WithAdamW, "AdamW")])
def test_compile_with_another_optimizer_is_a_configuration_error(variant, name):
    # had: KeyError 'amsgrad' (SGD) or a ValueError from inside the first step (AdamW, a subclass of Adam)
    with pytest.raises(
        ConfigurationError, match=f"compile: the compiled step is plain Adam, not {name}; .*--optimizer"
    ):
        fit(True, tiny_model(variant, compile=True))
