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
    /** Normalised (ymin, xmin, ymax, xmax); null without a predictor. */
    public final float[] box;
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
                double preprocessMs, double pipelineMs, long macs, Trace trace) {
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
    }

    /** Inference time of the predictor and the stages that ran. */
    public double inferMs() {
        double total = predictorMs == null ? 0 : predictorMs;
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

    /** Every intermediate tensor of one frame (what the golden vectors record). */
    public static final class Trace {
        public final byte[] predictorInput;
        public final byte[][] predictorRaw;
        public final float[] predictorValues;
        public final List<StageTrace> stages;

        Trace(byte[] predictorInput, byte[][] predictorRaw, float[] predictorValues,
              List<StageTrace> stages) {
            this.predictorInput = predictorInput;
            this.predictorRaw = predictorRaw;
            this.predictorValues = predictorValues;
            this.stages = Collections.unmodifiableList(stages);
        }
    }
}
