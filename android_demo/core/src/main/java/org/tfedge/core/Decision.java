package org.tfedge.core;

/**
 * The early-exit rule of {@code docs/bundle.md}, in double precision as the Python runtime
 * computes it ({@code rpi_runner.decide_stage}): decision logits
 * {@code d_k = z_k + w_k * d_(k-1)}, {@code p = exp(log_softmax(d_k))}, a criterion's score against the
 * stage's threshold, class {@code argmax(d_k)} (the first of equal maxima).
 *
 * <p>Sums are numpy's pairwise summation, so probabilities agree to the last bit wherever
 * {@code exp} and {@code log} do (the JVM's and numpy's may differ by one unit in the last
 * place); the decision (class and exit) then only differs for a score within about 1e-15 of
 * its threshold.
 */
public final class Decision {
    public static final String MAX_SOFTMAX = "max_softmax";
    public static final String MARGIN = "margin";
    public static final String ENTROPY = "entropy";
    /** The criteria a version 1 bundle may use, in the Python reader's order. */
    public static final String[] CRITERIA = {MAX_SOFTMAX, MARGIN, ENTROPY};

    private Decision() {
    }

    /** What one stage decided. */
    public static final class StageDecision {
        public final double[] decisionLogits;
        public final double[] probabilities;
        public final double score;
        public final int classIndex;
        public final boolean exits;

        StageDecision(double[] decisionLogits, double[] probabilities, double score,
                      int classIndex, boolean exits) {
            this.decisionLogits = decisionLogits;
            this.probabilities = probabilities;
            this.score = score;
            this.classIndex = classIndex;
            this.exits = exits;
        }

        /** The probability of the chosen class. */
        public double probability() {
            return probabilities[classIndex];
        }
    }

    /** numpy's pairwise summation of a float64 array (what {@code ndarray.sum()} does). */
    static double pairwiseSum(double[] a, int from, int n) {
        if (n < 8) {
            double res = 0.0;
            for (int i = 0; i < n; i++) {
                res += a[from + i];
            }
            return res;
        }
        if (n <= 128) {
            double[] r = new double[8];
            System.arraycopy(a, from, r, 0, 8);
            int i;
            for (i = 8; i < n - (n % 8); i += 8) {
                for (int j = 0; j < 8; j++) {
                    r[j] += a[from + i + j];
                }
            }
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++) {
                res += a[from + i];
            }
            return res;
        }
        int n2 = n / 2;
        n2 -= n2 % 8;
        return pairwiseSum(a, from, n2) + pairwiseSum(a, from + n2, n - n2);
    }

    static double sum(double[] a) {
        return pairwiseSum(a, 0, a.length);
    }

    /**
     * {@code log(softmax(d))} in double as the Python runtime computes it:
     * {@code s = d - max(d)}, {@code s - ln(sum(exp(s)))}.
     */
    public static double[] logSoftmax(double[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (double v : logits) {
            max = Math.max(max, v);
        }
        double[] shifted = new double[logits.length];
        double[] e = new double[logits.length];
        for (int i = 0; i < e.length; i++) {
            shifted[i] = logits[i] - max;
            e[i] = Math.exp(shifted[i]);
        }
        double logSum = Math.log(sum(e));
        for (int i = 0; i < e.length; i++) {
            shifted[i] = shifted[i] - logSum;
        }
        return shifted;
    }

    /** Softmax in double, computed as {@code exp(logSoftmax(d))} (the form decisions use). */
    public static double[] softmax(double[] logits) {
        double[] p = logSoftmax(logits);
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp(p[i]);
        }
        return p;
    }

    /**
     * The score {@code criterion} compares with the threshold, from the probabilities and
     * their logs: the largest probability; the gap between the two largest (a single class:
     * its probability, 1); or the entropy {@code -sum(p * log p)} in nats.
     */
    public static double confidenceScore(double[] p, double[] logp, String criterion) {
        if (MAX_SOFTMAX.equals(criterion)) {
            double max = Double.NEGATIVE_INFINITY;
            for (double v : p) {
                max = Math.max(max, v);
            }
            return max;
        }
        if (MARGIN.equals(criterion)) {
            if (p.length < 2) {
                return p[0];
            }
            double first = Double.NEGATIVE_INFINITY;
            double second = Double.NEGATIVE_INFINITY;
            for (double v : p) {
                if (v > first) {
                    second = first;
                    first = v;
                } else if (v > second) {
                    second = v;
                }
            }
            return first - second;
        }
        if (ENTROPY.equals(criterion)) {
            double[] terms = new double[p.length];
            for (int i = 0; i < p.length; i++) {
                terms[i] = p[i] * logp[i];
            }
            return -sum(terms);
        }
        throw new IllegalArgumentException("unknown early-exit criterion " + Py.str(criterion)
                + ": expected one of max_softmax, margin, entropy; upgrade the app if a newer "
                + "tfedge wrote the bundle");
    }

    /** Whether a score leaves the cascade: always for a null threshold. */
    public static boolean passesThreshold(double score, String criterion, Double threshold) {
        if (threshold == null) {
            return true;
        }
        if (ENTROPY.equals(criterion)) {
            return score <= threshold;
        }
        if (MAX_SOFTMAX.equals(criterion) || MARGIN.equals(criterion)) {
            return score >= threshold;
        }
        throw new IllegalArgumentException("unknown early-exit criterion " + Py.str(criterion)
                + ": expected one of max_softmax, margin, entropy");
    }

    /** {@code z + w * previous} in double ({@code z} alone at the first stage or for w = 0). */
    public static double[] decisionLogits(float[] logits, double[] previous,
                                          double accumulateWeight) {
        double[] d = new double[logits.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = logits[i];
        }
        if (previous == null || accumulateWeight == 0) {
            return d;
        }
        if (previous.length != d.length) {
            throw new IllegalArgumentException("stage outputs differ in length (" + previous.length
                    + " then " + d.length + "): every stage must output one logit per label; "
                    + "rebuild the bundle");
        }
        for (int i = 0; i < d.length; i++) {
            d[i] = d[i] + accumulateWeight * previous[i];
        }
        return d;
    }

    /** The index of the largest value, the first of equal ones (numpy's argmax). */
    public static int argmax(double[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }

    /**
     * One stage's decision from its dequantised logits; {@code previous} is the previous
     * stage's {@link StageDecision#decisionLogits} (null at the first stage).
     */
    public static StageDecision decideStage(float[] logits, double[] previous, String criterion,
                                            Double threshold, double accumulateWeight) {
        double[] d = decisionLogits(logits, previous, accumulateWeight);
        double[] logp = logSoftmax(d);
        double[] p = new double[logp.length];
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp(logp[i]);
        }
        double score = confidenceScore(p, logp, criterion);
        return new StageDecision(d, p, score, argmax(d),
                passesThreshold(score, criterion, threshold));
    }
}
