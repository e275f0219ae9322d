package org.tfedge.core;

import java.util.Collections;
import java.util.List;

/**
 * The outcome for one frame ({@code rpi_runner.FrameResult}): class, label, the probability of
 * the class ({@code score}), the stage it left at and that stage's criterion value, the box
 * and the crop window, and times in milliseconds.
 */
public final class FrameResult {
    public final int classIndex;
    public final String label;
    public final double score;
    public final int exitStage;
    public final double exitScore;
    /**
     * Normalised (ymin, xmin, ymax, xmax) the crop was cut at: the predictor's box, or the box
     * after the refiner's passes when the bundle has one; null without a predictor.
     */
    public final float[] box;
    /** The predictor's own box when a refiner moved it (null without a refiner). */
    public final float[] predictorBox;
    /** Inference time of the refiner, all passes (null without a refiner). */
    public final Double refinerMs;
    /** Pixels (y0, x0, y1, x1), max exclusive. */
    public final int[] window;
    public final double[] stageMs;
    /** Null without a predictor. */
    public final Double predictorMs;
    public final double preprocessMs;
    public final double pipelineMs;
    public final long macs;
    /** Every intermediate tensor, when asked for ({@code classify(..., true)}). */
    public final Trace trace;

    FrameResult(int classIndex, String label, double score, int exitStage, double exitScore,
                float[] box, int[] window, double[] stageMs, Double predictorMs,
                double preprocessMs, double pipelineMs, long macs, Trace trace,
                float[] predictorBox, Double refinerMs) {
        this.classIndex = classIndex;
        this.label = label;
        this.score = score;
        this.exitStage = exitStage;
        this.exitScore = exitScore;
        this.box = box;
        this.window = window;
        this.stageMs = stageMs;
        this.predictorMs = predictorMs;
        this.preprocessMs = preprocessMs;
        this.pipelineMs = pipelineMs;
        this.macs = macs;
        this.trace = trace;
        this.predictorBox = predictorBox;
        this.refinerMs = refinerMs;
    }

    /** Inference time of the predictor, the refiner and the stages that ran. */
    public double inferMs() {
        double total = (predictorMs == null ? 0 : predictorMs) + (refinerMs == null ? 0 : refinerMs);
        for (double ms : stageMs) {
            total += ms;
        }
        return total;
    }

    /** One stage's tensors for a frame. */
    public static final class StageTrace {
        public final byte[] input;
        public final byte[] rawOutput;
        public final float[] logits;
        public final Decision.StageDecision decision;

        StageTrace(byte[] input, byte[] rawOutput, float[] logits, Decision.StageDecision decision) {
            this.input = input;
            this.rawOutput = rawOutput;
            this.logits = logits;
            this.decision = decision;
        }
    }

    /** One refiner pass: the window it saw, its tensors, and the frame box after it. */
    public static final class RefinerTrace {
        public final int[] window;
        public final byte[] input;
        public final byte[][] raw;
        public final float[] values;
        /** The decoded box in window coordinates. */
        public final float[] inner;
        public final float[] box;

        RefinerTrace(int[] window, byte[] input, byte[][] raw, float[] values, float[] inner,
                     float[] box) {
            this.window = window;
            this.input = input;
            this.raw = raw;
            this.values = values;
            this.inner = inner;
            this.box = box;
        }
    }

    /** Every intermediate tensor of one frame (what the golden vectors record). */
    public static final class Trace {
        public final byte[] predictorInput;
        public final byte[][] predictorRaw;
        public final float[] predictorValues;
        public final List<StageTrace> stages;
        /** The refiner's passes, in order (empty without a refiner). */
        public final List<RefinerTrace> refiner;

        Trace(byte[] predictorInput, byte[][] predictorRaw, float[] predictorValues,
              List<StageTrace> stages, List<RefinerTrace> refiner) {
            this.predictorInput = predictorInput;
            this.predictorRaw = predictorRaw;
            this.predictorValues = predictorValues;
            this.stages = Collections.unmodifiableList(stages);
            this.refiner = Collections.unmodifiableList(refiner);
        }
    }
}
