package org.tfedge.core;

import org.json.JSONObject;

/** One classifier of the cascade, as the manifest lists it ({@code stages[k]}). */
public final class StageEntry {
    public final String name;
    public final String file;
    public final int resolution;
    public final long macs;
    public final String criterion;
    /** Null: every image that reaches this stage leaves here (the last stage). */
    public final Double threshold;
    public final double accumulateWeight;
    public final TensorSpec input;
    public final TensorSpec output;
    public final JSONObject metrics;

    StageEntry(String name, String file, int resolution, long macs, String criterion,
               Double threshold, double accumulateWeight, TensorSpec input, TensorSpec output,
               JSONObject metrics) {
        this.name = name;
        this.file = file;
        this.resolution = resolution;
        this.macs = macs;
        this.criterion = criterion;
        this.threshold = threshold;
        this.accumulateWeight = accumulateWeight;
        this.input = input;
        this.output = output;
        this.metrics = metrics;
    }
}
