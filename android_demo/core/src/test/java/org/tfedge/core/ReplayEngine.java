package org.tfedge.core;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * An {@link InferenceEngine} that replays the outputs the Python runner's LiteRT models
 * gave for one golden frame, and records the inputs the Java pipeline fed them.
 */
final class ReplayEngine implements InferenceEngine {
    final Map<String, byte[][]> outputs = new HashMap<String, byte[][]>();
    /** Per file, the outputs of successive calls (a refiner runs once per pass). */
    final Map<String, List<byte[][]>> sequences = new HashMap<String, List<byte[][]>>();
    final Map<String, byte[]> inputs = new HashMap<String, byte[]>();
    final List<String> calls = new ArrayList<String>();
    private final Map<String, TensorSpec[][]> specs = new HashMap<String, TensorSpec[][]>();

    ReplayEngine(Manifest m) {
        if (m.predictor != null) {
            specs.put(m.predictor.file, new TensorSpec[][] {{m.predictor.input},
                    m.predictor.outputs()});
        }
        if (m.refiner != null) {
            specs.put(m.refiner.file, new TensorSpec[][] {{m.refiner.input}, m.refiner.outputs()});
        }
        for (StageEntry s : m.stages) {
            specs.put(s.file, new TensorSpec[][] {{s.input}, {s.output}});
        }
    }

    /** Makes {@code file} declare other tensors than the manifest lists. */
    void declare(String file, TensorSpec[] in, TensorSpec[] out) {
        specs.put(file, new TensorSpec[][] {in, out});
    }

    @Override
    public Model load(final String file, byte[] model, int numThreads) {
        final TensorSpec[][] s = specs.get(file);
        return new Model() {
            @Override
            public TensorSpec[] inputSpecs() {
                return s[0];
            }

            @Override
            public TensorSpec[] outputSpecs() {
                return s[1];
            }

            @Override
            public byte[][] run(byte[] input) {
                calls.add(file);
                inputs.put(file, input.clone());
                List<byte[][]> sequence = sequences.get(file);
                byte[][] out = sequence != null && !sequence.isEmpty() ? sequence.remove(0)
                        : outputs.get(file);
                if (out == null) {
                    throw new AssertionError("the Java pipeline ran " + file + ", which the "
                            + "Python runner did not run on this frame");
                }
                return out;
            }

            @Override
            public void close() {
            }
        };
    }
}
