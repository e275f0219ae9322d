package org.tfedge.core;

import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;

import org.json.JSONObject;
import org.junit.Assume;
import org.junit.Test;

/**
 * The Python runtime's own golden bundle and vectors ({@code tests/golden/} of the repository,
 * written by {@code tests/golden/make_golden.py}), read in place so there is no copy to drift:
 * the folder named by {@code -Dtfedge.runtime.golden=DIR} (then it must exist), else
 * {@code ../../tests/golden} from the core's folder (skipped when the core is built outside
 * the repository).
 */
public class RuntimeGoldenTest {

    private static File dir() {
        String named = System.getProperty("tfedge.runtime.golden");
        if (named != null && !named.isEmpty()) {
            File d = new File(named);
            assertTrue("-Dtfedge.runtime.golden=" + named + " has no golden.json",
                    new File(d, "golden.json").isFile());
            return d;
        }
        File d = new File("../../tests/golden");
        Assume.assumeTrue("no tests/golden next to the core (built outside the repository)",
                new File(d, "golden.json").isFile());
        return d;
    }

    private static JSONObject golden(File dir) throws IOException, org.json.JSONException {
        return golden(dir, "golden.json");
    }

    private static JSONObject golden(File dir, String name)
            throws IOException, org.json.JSONException {
        return new JSONObject(new String(Files.readAllBytes(new File(dir, name).toPath()),
                StandardCharsets.UTF_8));
    }

    @Test
    public void runtimeGoldenFramesMatch() throws Exception {
        File dir = dir();
        JSONObject golden = golden(dir);
        Bundle bundle = Bundle.load(new FolderSource(new File(dir, golden.optString("bundle",
                "bundle"))));
        System.out.println("RuntimeGoldenTest: " + GoldenFrames.check(golden, bundle));
    }

    /** The version 2 bundle: the same models plus a two-pass refiner ({@code golden_refined.json}). */
    @Test
    public void runtimeRefinedGoldenFramesMatch() throws Exception {
        File dir = dir();
        JSONObject golden = golden(dir, "golden_refined.json");
        Bundle bundle = Bundle.load(new FolderSource(new File(dir, golden.getString("bundle"))));
        assertTrue("the refined golden bundle is version 2 with a refiner",
                bundle.manifest.version == 2 && bundle.manifest.refiner != null);
        System.out.println("RuntimeGoldenTest (refined): " + GoldenFrames.check(golden, bundle));
    }

    @Test
    public void runtimeGoldenDecisionsMatch() throws Exception {
        JSONObject golden = golden(dir());
        System.out.println("RuntimeGoldenTest: "
                + GoldenFrames.checkDecisionCases(golden.getJSONArray("decision_cases")));
    }
}
