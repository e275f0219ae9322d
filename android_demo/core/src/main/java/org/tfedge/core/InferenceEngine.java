package org.tfedge.core;

import java.io.Closeable;

/**
 * What runs the models: LiteRT's Interpreter in the app ({@code LiteRtEngine}), recorded
 * outputs in the JVM tests. The core never depends on LiteRT.
 */
public interface InferenceEngine {
    /**
     * Loads one model of the bundle ({@code file} names it for messages).
     *
     * @param numThreads interpreter threads
     */
    Model load(String file, byte[] model, int numThreads) throws BundleException;

    /** One loaded model: its tensors as the model file declares them, and inference. */
    interface Model extends Closeable {
        TensorSpec[] inputSpecs();

        TensorSpec[] outputSpecs();

        /**
         * Runs the model on one input buffer (the input tensor's bytes: one per element for
         * int8/uint8, little-endian for wider types) and returns every output's bytes, in the
         * model's output order.
         */
        byte[][] run(byte[] input);

        @Override
        void close();
    }
}
