"""The same MLP on the 8x8 digits with an explicit training loop (no fit()).

    PYTHONPATH=python python examples/train_digits_loop.py
"""
import numpy as np

import nnforge
from nnforge import data, nn

nnforge.seed(0)
x, y = data.load_digits()
(x_train, y_train), _, (x_test, y_test) = data.train_val_test_split(x / 16.0, y, val_fraction=0.0,
                                                                    test_fraction=0.2, stratify=y)
scaler = data.Standardizer().fit(x_train)
x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

model = nn.Sequential(nn.Linear(64, 256, activation="relu"), nn.Linear(256, 128, activation="relu"),
                      nn.Linear(128, 10))
model[0].needs_input_grad = False              # nothing needs dL/dx of the input: skip that GEMM
loss_fn = nn.CrossEntropyLoss()
groups = nn.decay_groups(model, 1e-4)          # weight decay on the matrices, not the biases
model.flatten_parameters([g["params"] for g in groups])  # one flat buffer, each group one segment
opt = nn.AdamW(groups, lr=1e-3)                # so each step is one fused kernel call per group

for epoch in range(15):
    model.train()
    total = 0.0
    for xb, yb in data.batches(x_train, y_train, batch_size=32, shuffle=True):
        logits = model.forward(xb)
        total += loss_fn.forward(logits, yb) * len(xb)
        model.backward(loss_fn.backward())     # accumulates into Parameter.grad
        opt.step(zero_grad=True)               # fused update; gradients cleared in the same pass
    model.eval()
    acc = nn.accuracy(model.forward(x_test), y_test)
    print(f"epoch {epoch + 1:2d}  loss {total / len(x_train):.4f}  test accuracy {acc:.4f}")

nn.checkpoint.save("digits_loop.npz", model, opt, extra={"epoch": 15})
print("saved digits_loop.npz; reload with nn.checkpoint.load(path, model, opt)")
