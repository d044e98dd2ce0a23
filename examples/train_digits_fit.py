"""Train an MLP on scikit-learn's bundled 8x8 digits with the Keras-style API.

    PYTHONPATH=python python examples/train_digits_fit.py
"""
import nnforge
from nnforge import data, nn

nnforge.seed(0)
x, y = data.load_digits()
(x_train, y_train), (x_val, y_val), (x_test, y_test) = data.train_val_test_split(
    x / 16.0, y, val_fraction=0.1, test_fraction=0.2, stratify=y)
scaler = data.Standardizer().fit(x_train)          # statistics from the training set only
x_train, x_val, x_test = (scaler.transform(a) for a in (x_train, x_val, x_test))

model = nn.Sequential(nn.Linear(64, 256, activation="relu"),
                      nn.Linear(256, 128, activation="relu"),
                      nn.Linear(128, 10))
model.compile(nn.Adam(model, lr=1e-3, clip_grad_norm=5.0), loss="cross_entropy", metrics=["accuracy", "top2"])
schedule = nn.CosineAnnealingLR(model.optimizer, t_max=20)
history = model.fit(x_train, y_train, epochs=20, batch_size=32, validation_data=(x_val, y_val),
                    callbacks=[nn.LRScheduler(schedule),
                               nn.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
                               nn.ModelCheckpoint("digits_best.npz", save_best_only=True)])
print("test:", model.evaluate(x_test, y_test))
print("first predictions:", model.predict(x_test[:10]).argmax(axis=1), "labels:", y_test[:10])
