"""from_torch: three torch.nn.Modules trained by trainopt match PyTorch's
own training, loss by loss over 10 steps (within 1e-4), and parameter by
parameter after them. Runs in .venv-torch (Debian's PyTorch);
TRAINOPT_REQUIRE_TORCH=1 makes a missing torch a failure."""
import os

import numpy as np
import pytest

if os.environ.get("TRAINOPT_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")

import trainopt  # noqa: E402

STEPS, BATCH = 10, 16


def mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, 10))


def cnn():
    # No bias before the BatchNorm: its gradient is zero but for rounding,
    # which Adam scales up to full steps in both systems alike.
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1, bias=False),
                               torch.nn.BatchNorm2d(8),
                               torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 14 * 14, 10))


class TokenModel(torch.nn.Module):
    """Embedding, LayerNorm, a GELU MLP with a residual: scores per token."""

    def __init__(self, vocab=50, dim=32):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.norm = torch.nn.LayerNorm(dim)
        self.up, self.down = torch.nn.Linear(dim, 4 * dim), torch.nn.Linear(4 * dim, dim)
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, ids):
        h = self.emb(ids)
        h = h + self.down(torch.nn.functional.gelu(self.up(self.norm(h))))
        return self.head(h)


CASES = {
    "mlp": (mlp, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
            trainopt.optim.SGD(lr=0.05, momentum=0.9), "image", {}),
    "cnn_bn": (cnn, lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2),
               trainopt.optim.AdamW(lr=1e-3, weight_decay=1e-2), "image", {}),
    "tokens": (TokenModel, lambda p: torch.optim.Adam(p, lr=1e-2),
               trainopt.optim.Adam(lr=1e-2), "tokens", {"class_axis": -1}),
}


def data(kind, rng):
    n = STEPS * BATCH
    if kind == "image":
        return (rng.random((n, 1, 28, 28), dtype=np.float32),
                rng.integers(0, 10, n).astype(np.int64))
    ids = rng.integers(0, 50, (n, 12)).astype(np.int64)
    return ids, np.roll(ids, -1, axis=1)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_pytorch(name):
    make, torch_opt, opt, kind, flags = CASES[name]
    torch.manual_seed(0)
    module = make()
    x, y = data(kind, np.random.default_rng(0))
    example = torch.from_numpy(x[:BATCH])
    source = trainopt.from_torch(module, example)
    assert "training mode" in source.note
    with trainopt.compile(source, batch_size=BATCH, loss="cross_entropy", optimizer=opt,
                          **flags) as model:
        ours = []
        model.fit(x, y, epochs=1, shuffle=False, verbose=0,
                  callbacks=[trainopt.callbacks.LambdaCallback(
                      on_step_end=lambda s, logs: ours.append(logs["loss"]))])
        # Parameters and BatchNorm's running statistics.
        trained = {k: v for k, v in model.state().items() if k in module.state_dict()}

    module.train()
    optimizer = torch_opt(module.parameters())
    theirs = []
    for i in range(STEPS):
        xb = torch.from_numpy(x[i * BATCH:(i + 1) * BATCH])
        yb = torch.from_numpy(y[i * BATCH:(i + 1) * BATCH])
        out = module(xb)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]),
                                                 yb.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        theirs.append(loss.item())
    assert len(ours) == STEPS
    diff = np.abs(np.array(ours) - np.array(theirs)).max()
    print(f"{name}: worst loss difference over {STEPS} steps {diff:.2e}")
    assert diff <= 1e-4, (ours, theirs)
    state = module.state_dict()
    assert len(trained) == len([k for k in state if "num_batches" not in k])
    for k, v in trained.items():
        assert np.allclose(v, state[k].numpy(), rtol=1e-3, atol=1e-4), k
