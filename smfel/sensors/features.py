"""Per-beat features from a beat's cleaned ECG segment and its RR intervals, computed causally.

Each beat gives :data:`N_FEATURES` numbers, all relative to the same patient's recent past so
that they mean the same thing from one patient to the next (what matters when the model is
used on patients it never saw):

* rhythm: the previous, next and local (last ``LOCAL_BEATS``) RR intervals divided by the
  running mean RR, and the prematurity ratios previous/local and previous/next (de Chazal et
  al., IEEE TBME 51(7), 2004, with the running normalisation of Llamedo and Martinez, IEEE
  TBME 58(3), 2011);
* irregularity: the mean absolute successive difference and the standard deviation of the last
  ``LOCAL_BEATS`` RR intervals over their mean; the median and mean absolute successive
  difference of the last ``IRREGULAR_BEATS`` over their median, and the fraction of those
  differences above ``IRREGULAR_STEP`` of the median. In atrial fibrillation every beat comes
  "early" or "late", so prematurity alone calls many normal beats supraventricular; these say
  how irregular the rhythm already was. ``rr_prev_z`` puts the two together: the prematurity
  ``rr_prev / local - 1`` in units of that typical relative step (at least ``MIN_SPREAD``),
  clipped to +-``Z_MAX``: large for an early beat in a steady rhythm, small in fibrillation;
* morphology against the patient's running average beat (the template, an exponential average
  over ``TEMPLATE_BEATS`` amplitude-normalised segments of beats that were not premature: a
  previous RR interval of at least ``TEMPLATE_GATE`` times the local mean). Premature beats,
  S and V alike, are left out so that in bigeminy the template stays the normal beat; this
  needs no labels. The features are the correlation with the template over the P-wave region
  (a premature atrial beat starts from another focus, so its P wave differs or hides in the T
  wave) and the RMS difference from the template over the T wave (a ventricular beat's
  repolarisation differs). The correlation and the RMS differences over the QRS complex and
  over the T wave are also given relative to their typical values for this patient (running
  averages over the beats that enter the template): the correlation minus its typical value,
  the RMS differences over theirs. In a noisy record every beat differs from the template a
  little, and without a visible P wave (atrial fibrillation) every P-wave correlation is low;
  relative to the patient's usual values, what stands out is the beat that differs more than
  the others do (a bundle-branch-block patient's normal beats are wide yet match the
  template). Two contrasts with the template complete them: ``qrs_slope``, the logarithm of
  the ratio of the steepest sample-to-sample step from R - 50 ms to R + 80 ms in the beat to
  that in the template (a ventricular beat spreads through the muscle instead of the
  conduction system, so its QRS rises and falls more slowly), and ``p_energy``, the logarithm
  of the ratio of the variance over the P-wave region to the template's (a P wave missing,
  changed or overlapped by the previous T wave).

Amplitudes are divided by the running peak-to-peak amplitude of the segments. Every running
estimate (mean RR, amplitude, template) is updated after the beat's features are taken, from
that beat alone, so a device computes them causally and a whole-record replay computes exactly
the same numbers.

The feature set was chosen by leave-one-patient-out cross-validation inside MIT-BIH DS1
(``smfel-sim evaluate --cv``, detected beats, j-index averaged over ten hidden-layer seeds, with
the model defaults of :mod:`smfel.agent.model_defaults`; differences under about 0.01 are within
what the choice of random layer moves). The absolute RR intervals and raw 20-point morphology
window used before scored 0.55. The relative rhythm and irregularity features with
correlations and RMS differences against an ungated template (every beat averaged in) reached
about 0.67; gating the template, which keeps it the normal beat in bigeminy, about 0.68;
dropping the QRS, T-wave and whole-beat correlations (redundant with the RMS differences)
0.70, with less spread across seeds; adding ``rr_prev_z`` and the three relative morphology
features 0.71 (S +P 36% to 38%, V +P 75% to 78%). With L = 150 hidden units (0.722), adding
``qrs_slope`` and ``p_energy`` and dropping the absolute QRS RMS difference (its relative
version stays) gave 0.729 (0.741 to 0.745 with annotated beats): S sensitivity 75.9% to 79.1%
and +P 39.8% to 40.7%, V +P 77.5% to 80.3% at V sensitivity 89.1% to 87.4%. Each of the two
alone moved the j-index by under 0.005, and both with the absolute QRS RMS difference kept
0.724 (S 74.7% / 37.0%, V 89.1% / 81.6%): without it, the model leans less on the QRS
shape of the few patients whose S beats are aberrated. Tried next to the 17 features and left
out (five seeds, each within 0.005 of 0.718 or worse): the compensatory pause (previous plus
next RR over twice the local mean, also in units of the typical step), the next RR over the
local mean, the QRS energy ratio, the R-peak and S-trough differences, the T-wave projection
on the template, the QRS correlation, the QRS absolute area difference (the R and S
differences cost S sensitivity, 64% for the S trough); and next to ``qrs_slope`` and
``p_energy``: the steepest rising and falling steps apart, the beat's peak-to-peak amplitude
over the running amplitude, the QRS energy centroid and width against the template's, and the
slope, width and P-energy contrasts relative to their typical values (each 0.714 to 0.722, S
sensitivity 72-74%). Every feature added costs S sensitivity unless it adds as much: S beats
come from few DS1 patients, and the model learns their particulars. Tried and left out for doing no better: the
morphology window, or its difference from the template, next to these; finer QRS sampling;
QRS width; P-wave prominence of the template and of the beat; lagged and amplitude-ratio
template matches; RR relative to template-like beats only; the previous or next beat's
features; a template gated by shape (correlation) instead of rhythm; prematurity over the
local standard deviation; logarithms or square roots of the RMS ratios; other time constants
measured before the last step (``IRREGULAR_BEATS`` 16 or 64, ``MEAN_BEATS`` 100 or 2000, ``LOCAL_BEATS`` 5 or 20,
``TEMPLATE_BEATS`` 20 or 100, ``AMP_BEATS`` 30 or 300, ``TEMPLATE_GATE`` 0.9 or 1, all within
0.005 of the chosen ones, ``LOCAL_BEATS`` 20 at 0.697 the furthest).
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FEATURE_NAMES",
    "IRREGULAR_BEATS",
    "LOCAL_BEATS",
    "N_FEATURES",
    "POST",
    "PRE",
    "BeatFeatures",
]

F64 = NDArray[np.float64]

PRE = 0.250  # seconds of segment before the R peak
POST = 0.417  # seconds after it
QRS_BEFORE = 0.100  # the QRS region of the segment: R - 100 ms ...
QRS_AFTER = 0.150  # ... to R + 150 ms; the T-wave region follows it to the segment's end
P_END = 0.072  # the P-wave region: from the segment's start to R - 72 ms
SLOPE_BEFORE = 0.050  # the steepest slope is sought from R - 50 ms ...
SLOPE_AFTER = 0.080  # ... to R + 80 ms
LOCAL_BEATS = 10
IRREGULAR_BEATS = 32
IRREGULAR_STEP = 0.15
MEAN_BEATS = 500
AMP_BEATS = 100
TEMPLATE_BEATS = 50
TEMPLATE_GATE = 0.95
TEMPLATE_FIRST = 5  # the first beats always enter the template
MIN_AMPLITUDE = 0.01  # mV; guards a flat line
MIN_RMS = 1e-3  # floor of the typical RMS differences (in amplitude units)
MIN_SPREAD = 0.02  # floor of the typical relative RR step in rr_prev_z
MIN_VARIANCE = 1e-9  # floor of the P-wave variances in p_energy (in amplitude units^2)
MIN_SLOPE = 1e-6  # floor of the steepest slopes in qrs_slope (amplitude units per sample)
Z_MAX = 10.0  # rr_prev_z is clipped to +-Z_MAX

FEATURE_NAMES: tuple[str, ...] = (
    "rr_prev_n", "rr_next_n", "rr_local_n", "rr_prev_local", "rr_prev_next",
    "rr_local_msd", "rr_local_sd", "rr_irr_median", "rr_irr_fraction", "rr_irr_mean",
    "rr_prev_z", "corr_p", "rms_t", "corr_p_rel", "rms_qrs_rel", "rms_t_rel", "qrs_slope",
    "p_energy",
)  # fmt: skip
N_FEATURES = len(FEATURE_NAMES)


class BeatFeatures:
    """``update(segment, rr_prev, rr_next) -> features`` for consecutive beats of one stream.

    ``segment`` is the cleaned ECG (mV) from ``PRE`` before to ``POST`` after the R peak, at
    ``fs``; its length must be the same for every beat.

    Cost matters (a device runs this for every beat in a few tens of microseconds): the RR
    statistics are taken in plain Python over at most ``IRREGULAR_BEATS`` numbers, and the
    correlation, the two RMS differences and the P-wave variances come from the sums of ``s``,
    ``t``, ``s^2``, ``t^2``, ``s t`` and ``(s - t)^2`` over the three regions, all given by one
    matrix product with a fixed region-indicator matrix; the steepest steps of the beat and
    the template are taken together in a preallocated buffer.
    """

    def __init__(self, fs: float) -> None:
        self.pre = int(round(PRE * fs))
        self.length = self.pre + int(round(POST * fs))
        q0 = self.pre - int(round(QRS_BEFORE * fs))
        q1 = self.pre + int(round(QRS_AFTER * fs))
        p1 = self.pre - int(round(P_END * fs))
        s0 = self.pre - int(round(SLOPE_BEFORE * fs))
        s1 = self.pre + int(round(SLOPE_AFTER * fs))
        if not 0 < q0 < self.pre < q1 < self.length or not 0 < p1 < self.pre or not s0 < s1 - 1:
            raise ValueError(f"sampling rate {fs} Hz too low for the beat segment's regions")
        # Columns: P-wave region, QRS, T-wave region.
        regions = np.zeros((self.length, 3))
        regions[:p1, 0] = 1.0
        regions[q0:q1, 1] = 1.0
        regions[q1:, 2] = 1.0
        self._regions = regions
        self._slope = (s0, s1)
        self._steps_buf = np.empty((2, s1 - s0 - 1))  # successive differences, beat and template
        self._sizes: list[float] = regions.sum(axis=0).tolist()
        self._rows = np.empty((6, self.length))  # s, t, s*s, t*t, s*t, (s-t)^2
        self._rr: deque[float] = deque(maxlen=IRREGULAR_BEATS)
        self._steps: deque[float] = deque(maxlen=IRREGULAR_BEATS - 1)  # |successive RR changes|
        self._mean = 0.0
        self._amp = 0.0
        self._template: F64 | None = None
        self._in_template = 0
        self._typical: list[float] | None = None  # typical corr_p, rms_qrs, rms_t
        self._in_typical = 0
        self._count = 0

    def update(self, segment: F64, rr_prev: float, rr_next: float) -> F64:
        if segment.shape != (self.length,):
            raise ValueError(f"segment must have {self.length} samples, got {segment.shape}")
        self._count += 1
        n = self._count
        if self._rr:
            self._steps.append(abs(rr_prev - self._rr[-1]))
        self._rr.append(rr_prev)
        self._mean += (rr_prev - self._mean) / min(n, MEAN_BEATS)
        self._amp += (float(segment.max() - segment.min()) - self._amp) / min(n, AMP_BEATS)
        rows = self._rows
        seg = np.multiply(segment, 1.0 / max(self._amp, MIN_AMPLITUDE), out=rows[0])
        first = self._template is None
        if self._template is None:
            self._template = seg.copy()
        rhythm = self._rhythm(rr_prev, rr_next)
        shape, contrast = self._morphology(seg, self._template)
        typ = self._typical
        if typ is None:
            relative = [0.0, 1.0, 1.0]
        else:
            relative = [shape[0] - typ[0], shape[1] / max(typ[1], MIN_RMS)]
            relative.append(shape[2] / max(typ[2], MIN_RMS))
        out = np.array([*rhythm, shape[0], shape[2], *relative, *contrast])
        if rhythm[3] >= TEMPLATE_GATE or self._in_template < TEMPLATE_FIRST:
            self._in_template += 1
            rate = 1.0 / min(self._in_template, TEMPLATE_BEATS)
            self._template += (seg - self._template) * rate
            if not first:  # the first beat was compared with itself
                self._in_typical += 1
                if typ is None:
                    self._typical = shape
                else:
                    rate = 1.0 / min(self._in_typical, TEMPLATE_BEATS)
                    self._typical = [a + (b - a) * rate for a, b in zip(typ, shape, strict=True)]
        return out

    def _rhythm(self, rr_prev: float, rr_next: float) -> list[float]:
        rr = list(self._rr)
        local = rr[-LOCAL_BEATS:]
        k = len(local)
        lm = sum(local) / k
        mean = self._mean
        out = [rr_prev / mean, rr_next / mean, lm / mean, rr_prev / lm, rr_prev / rr_next]
        if len(rr) < 2:
            return out + [0.0] * 5 + [_clip((rr_prev / lm - 1.0) / MIN_SPREAD)]
        steps = list(self._steps)
        m = len(steps)
        msd = sum(steps[-(k - 1) :]) / (k - 1) if k > 1 else 0.0
        sd = math.sqrt(sum([(v - lm) ** 2 for v in local]) / k)
        med = _median(rr)
        ordered = sorted(steps)
        big = m - bisect.bisect_right(ordered, IRREGULAR_STEP * med)
        half = m // 2
        spread = (ordered[half] if m % 2 else 0.5 * (ordered[half - 1] + ordered[half])) / med
        out += [msd / lm, sd / lm, spread, big / m, sum(steps) / m / med]
        out.append(_clip((rr_prev / lm - 1.0) / max(spread, MIN_SPREAD)))
        return out

    def _morphology(self, seg: F64, tpl: F64) -> tuple[list[float], list[float]]:
        """``[corr_p, rms_qrs, rms_t]`` (their typical values are kept) and
        ``[qrs_slope, p_energy]``."""
        rows = self._rows
        rows[1] = tpl
        s0, s1 = self._slope
        steps = self._steps_buf
        np.subtract(rows[:2, s0 + 1 : s1], rows[:2, s0 : s1 - 1], out=steps)
        np.abs(steps, out=steps)
        steep = steps.max(axis=1).tolist()
        np.multiply(seg, seg, out=rows[2])
        np.multiply(tpl, tpl, out=rows[3])
        np.multiply(seg, tpl, out=rows[4])
        np.subtract(seg, tpl, out=rows[5])
        np.multiply(rows[5], rows[5], out=rows[5])
        sums = (rows @ self._regions).tolist()  # each row's sums over the regions
        (s, _, _), (t, _, _), (ss, _, _), (tt, _, _), (st, _, _), (_, dq, dt) = sums
        n_p, n_qrs, n_t = self._sizes
        var_s, var_t = ss - s * s / n_p, tt - t * t / n_p
        var = var_s * var_t
        corr_p = (st - s * t / n_p) / math.sqrt(var) if var > 1e-18 else 0.0
        slope = math.log(max(steep[0], MIN_SLOPE) / max(steep[1], MIN_SLOPE))
        p_energy = math.log(max(var_s / n_p, MIN_VARIANCE) / max(var_t / n_p, MIN_VARIANCE))
        return [corr_p, math.sqrt(dq / n_qrs), math.sqrt(dt / n_t)], [slope, p_energy]


def _clip(z: float) -> float:
    return min(max(z, -Z_MAX), Z_MAX)


def _median(v: list[float]) -> float:
    w = sorted(v)
    m = len(w) // 2
    return w[m] if len(w) % 2 else 0.5 * (w[m - 1] + w[m])
