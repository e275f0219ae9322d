package org.tfedge.core;

import org.json.JSONObject;

/**
 * The predictor's refiner ({@code refiner} in a version 2 manifest): per pass it sees the
 * square {@link #window} of the frame around the current box at {@link #resolution} and
 * predicts the object's box inside that window ({@link #boxFormat}, as the predictor's);
 * {@link Refine} maps it back into the frame. {@link #macs} are one pass's.
 */
public final class RefinerEntry {
    public final String file;
    public final int resolution;
    public final long macs;
    public final int passes;
    public final String boxFormat;
    public final CropConfig window;
    public final TensorSpec input;
    private final TensorSpec[] outputs;
    public final JSONObject metrics;

    RefinerEntry(String file, int resolution, long macs, int passes, String boxFormat,
                 CropConfig window, TensorSpec input, TensorSpec[] outputs, JSONObject metrics) {
        this.file = file;
        this.resolution = resolution;
        this.macs = macs;
        this.passes = passes;
        this.boxFormat = boxFormat;
        this.window = window;
        this.input = input;
        this.outputs = outputs.clone();
        this.metrics = metrics;
    }

    /** Every output, in the model's order (two for {@code heatmap_cyxhw}). */
    public TensorSpec[] outputs() {
        return outputs.clone();
    }
}
