package org.tfedge.demo;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tfedge.core.BundleException;
import org.tfedge.core.DType;
import org.tfedge.core.InferenceEngine;
import org.tfedge.core.TensorSpec;

/**
 * The core's {@link InferenceEngine} on LiteRT ({@code com.google.ai.edge.litert:litert}):
 * one Interpreter per model, XNNPACK on, the chosen number of threads. Buffers are the raw
 * tensor bytes the core prepares and decodes (quantised with each tensor's own parameters).
 */
final class LiteRtEngine implements InferenceEngine {

    @Override
    public Model load(String file, byte[] model, int numThreads) throws BundleException {
        ByteBuffer buffer = ByteBuffer.allocateDirect(model.length).order(ByteOrder.nativeOrder());
        buffer.put(model).rewind();
        Interpreter.Options options = new Interpreter.Options()
                .setNumThreads(numThreads)
                .setUseXNNPACK(true);
        final Interpreter interpreter;
        try {
            interpreter = new Interpreter(buffer, options);
        } catch (RuntimeException e) {
            throw new BundleException(file + ": LiteRT cannot load it (" + e.getMessage()
                    + "): rebuild the bundle with tfedge-convert", e);
        }
        final TensorSpec[] inputs = new TensorSpec[interpreter.getInputTensorCount()];
        for (int i = 0; i < inputs.length; i++) {
            inputs[i] = spec(interpreter.getInputTensor(i), file);
        }
        final TensorSpec[] outputs = new TensorSpec[interpreter.getOutputTensorCount()];
        for (int i = 0; i < outputs.length; i++) {
            outputs[i] = spec(interpreter.getOutputTensor(i), file);
        }
        return new Model() {
            private final ByteBuffer in = ByteBuffer.allocateDirect(inputs[0].byteCount())
                    .order(ByteOrder.LITTLE_ENDIAN);
            private final ByteBuffer[] out = new ByteBuffer[outputs.length];

            {
                for (int i = 0; i < out.length; i++) {
                    out[i] = ByteBuffer.allocateDirect(outputs[i].byteCount())
                            .order(ByteOrder.LITTLE_ENDIAN);
                }
            }

            @Override
            public TensorSpec[] inputSpecs() {
                return inputs.clone();
            }

            @Override
            public TensorSpec[] outputSpecs() {
                return outputs.clone();
            }

            @Override
            public byte[][] run(byte[] input) {
                in.clear();
                in.put(input).rewind();
                Map<Integer, Object> targets = new HashMap<Integer, Object>();
                for (int i = 0; i < out.length; i++) {
                    out[i].clear();
                    targets.put(i, out[i]);
                }
                interpreter.runForMultipleInputsOutputs(new Object[] {in}, targets);
                byte[][] result = new byte[out.length][];
                for (int i = 0; i < out.length; i++) {
                    out[i].rewind();
                    result[i] = new byte[out[i].remaining()];
                    out[i].get(result[i]);
                }
                return result;
            }

            @Override
            public void close() {
                interpreter.close();
            }
        };
    }

    private static TensorSpec spec(Tensor tensor, String file) throws BundleException {
        DType dtype;
        DataType type = tensor.dataType();
        if (type == DataType.INT8) {
            dtype = DType.INT8;
        } else if (type == DataType.UINT8) {
            dtype = DType.UINT8;
        } else if (type == DataType.INT16) {
            dtype = DType.INT16;
        } else if (type == DataType.FLOAT32) {
            dtype = DType.FLOAT32;
        } else {
            throw new BundleException(file + ": a " + type + " tensor, which bundles do not use: "
                    + "rebuild the bundle with tfedge-convert");
        }
        Tensor.QuantizationParams q = tensor.quantizationParams();
        return new TensorSpec(tensor.shape(), dtype, q.getScale(), q.getZeroPoint());
    }
}
