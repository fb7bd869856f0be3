"""The published numbers the lab's measurements are set beside, with their sources.

One :class:`Published` per number: the experiment it belongs to (the key a lab run matches:
``"music-jsb"``, ``"mnist"``, ``"adding-600"`` …), the cell, the metric on the lab's scale
(accuracies as fractions, NLL in nats per time step, MSE, cross-entropy in nats per step), the
paper and table, and the protocol behind it (data, training, model size), which the report
sets against the lab's own. Nothing here is computed: these are the papers' figures, as
collected with their sources in the project's notes on the published record.

Sources:

* Bai, Kolter & Koltun 2018, "An Empirical Evaluation of Generic Convolutional and Recurrent
  Networks for Sequence Modeling", arXiv:1803.01271 — Table 1 (results), Table 3 (LSTM
  settings), the authors' repository locuslab/TCN (data sizes, epochs, batch).
* Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified
  Linear Units", arXiv:1504.00941 — as tabulated by Cooijmans et al. 2016, "Recurrent Batch
  Normalization", Table 1.
* Hu et al. 2018, "Overcoming the vanishing gradient problem in plain recurrent networks",
  Table 1 (an independent IRNN vs LSTM comparison at Le et al.'s settings).
* Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks",
  ICML 2013 — Table 1.
* Chung, Gulcehre, Cho & Bengio 2014, "Empirical Evaluation of Gated Recurrent Neural Networks
  on Sequence Modeling", arXiv:1412.3555 — JSB Chorales, as quoted by a reproduction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

BAI = "Bai, Kolter & Koltun 2018, Table 1"
BAI_MNIST = ("pixel MNIST, 60,000 train / 10,000 test images, 10 epochs, ≈68K parameters, "
             "LSTM 1×130 RMSprop 1e-3, clip 1")
BAI_ADDING = ("T = 600, 50,000 training sequences × 10 epochs, batch 32, ≈70K parameters, "
              "LSTM 1×130, clip 5, forget bias 1")
BAI_COPY = ("T = 1000, 10,000 training sequences, batch 32, ≈16K parameters, LSTM 1×50, "
            "clip 1, RMSprop/Adam")
BAI_JSB = ("published split, one sequence per batch, ≈300K parameters, LSTM 2×200, dropout "
           "0.2, clip 1, forget bias 10; test NLL at the best validation epoch")
BAI_NOTTINGHAM = ("published split, one sequence per batch, ≈1M parameters, LSTM 3×280 or "
                  "1×500, dropout 0.1, clip 0.5–1, Adam 4e-3")
LE = "Le, Jaitly & Hinton 2015, via Cooijmans et al. 2016, Table 1"
LE_PROTOCOL = ("pixel MNIST, 60,000 images, 100 units, SGD with lr down to 1e-8 for "
               "≈1.7M steps (Keras' reproduction: 900 epochs)")
HU = "Hu et al. 2018, Table 1"
HU_PROTOCOL = "pixel MNIST, 60,000 images, 1 layer × 100 units, RMSprop 1e-6, batch 128, ≤500 epochs"
PASCANU = "Pascanu, Mikolov & Bengio 2013, Table 1"
PASCANU_PROTOCOL = ("Nottingham, tanh RNN trained with SGD + momentum (MSGD), with and "
                    "without clipping the gradient norm; sizes not stated in the table")
CHUNG = "Chung et al. 2014 (quoted by the 2j2h5/lstm-gru reproduction)"
CHUNG_PROTOCOL = "published split, about equal parameter counts, RMSprop"


@dataclass(frozen=True)
class Published:
    """One published number."""

    experiment: str  # the lab experiment it is compared with ("music-jsb", "adding-600", …)
    cell: str  # the lab's name of the model: rnn, lstm, gru, irnn, "rnn-clipped" …
    metric: str  # the lab's metric name (accuracy as a fraction, nll, mse, xent)
    value: float
    source: str  # paper and table
    protocol: str  # what the paper ran (data, training, size)

    def to_dict(self) -> dict:
        return asdict(self)


def _rows(experiment, metric, source, protocol, values) -> list[Published]:
    return [Published(experiment, cell, metric, value, source, protocol)
            for cell, value in values.items()]


PUBLISHED: tuple[Published, ...] = tuple(
    _rows("mnist", "accuracy", BAI, BAI_MNIST, {"lstm": 0.872, "gru": 0.962, "rnn": 0.215})
    + _rows("pmnist", "accuracy", BAI, BAI_MNIST, {"lstm": 0.857, "gru": 0.873, "rnn": 0.253})
    + _rows("adding-600", "mse", BAI, BAI_ADDING, {"lstm": 0.164, "gru": 5.3e-5, "rnn": 0.177})
    + _rows("copy-1000", "xent", BAI, BAI_COPY, {"lstm": 0.0204, "gru": 0.0197, "rnn": 0.0202})
    + _rows("music-jsb", "nll", BAI, BAI_JSB, {"lstm": 8.45, "gru": 8.43, "rnn": 8.91})
    + _rows("music-nottingham", "nll", BAI, BAI_NOTTINGHAM,
            {"lstm": 3.29, "gru": 3.46, "rnn": 4.05})
    + _rows("music-jsb-chung", "nll", CHUNG, CHUNG_PROTOCOL,
            {"lstm": 8.67, "gru": 8.54, "rnn": 9.19})
    + _rows("irnn-mnist", "accuracy", LE, LE_PROTOCOL, {"irnn": 0.970, "rnn": 0.350})
    + _rows("irnn-pmnist", "accuracy", LE, LE_PROTOCOL, {"irnn": 0.820, "rnn": 0.350})
    + _rows("irnn-mnist-hu", "accuracy", HU, HU_PROTOCOL, {"irnn": 0.8355, "lstm": 0.2410})
    + _rows("clipping-nottingham", "nll", PASCANU, PASCANU_PROTOCOL,
            {"rnn, clip none": 3.80, "rnn, clip norm": 3.48}))

# Findings without a number of their own that a verdict quotes.
FINDINGS = {
    "adding-lstm": ("Bai et al. (2018, Table 1) found the same for the LSTM at T = 600: test "
                    "MSE 0.164, at the predict-1 baseline, while the GRU reached 5.3e-5"),
    "adding-init": ("Hu et al. (2018) report that an LSTM with the default initialisation "
                    "'fails to converge' on the adding problem at T = 400 (curves only); Bai "
                    "et al. (2018, Table 3) give their LSTMs forget-gate biases of 1 to 10"),
}


def published_for(experiment: str) -> list[Published]:
    """The published numbers of ``experiment`` (empty when there are none)."""
    return [p for p in PUBLISHED if p.experiment == experiment]
