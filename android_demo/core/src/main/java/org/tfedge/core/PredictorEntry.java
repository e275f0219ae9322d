package org.tfedge.core;

import org.json.JSONObject;

/** The foreground box predictor of dynamic cropping ({@code predictor} in the manifest). */
public final class PredictorEntry {
    public final String file;
    public final int resolution;
    public final long macs;
    public final String boxFormat;
    public final CropConfig crop;
    public final TensorSpec input;
    private final TensorSpec[] outputs;
    public final JSONObject metrics;

    PredictorEntry(String file, int resolution, long macs, String boxFormat, CropConfig crop,
                   TensorSpec input, TensorSpec[] outputs, JSONObject metrics) {
        this.file = file;
        this.resolution = resolution;
        this.macs = macs;
        this.boxFormat = boxFormat;
        this.crop = crop;
        this.input = input;
        this.outputs = outputs.clone();
        this.metrics = metrics;
    }

    /** Every output, in the model's order (two for {@code heatmap_cyxhw}). */
    public TensorSpec[] outputs() {
        return outputs.clone();
    }
}
