package org.tfedge.core;

import java.io.File;
import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Base64;
import java.util.Iterator;

import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The golden vectors the Python runtime wrote ({@code android_demo/tools/make_vectors.py}):
 * {@code src/test/resources/golden}, or the folder named by the system property
 * {@code tfedge.golden} (to run these tests against other vectors).
 */
final class Golden {
    private Golden() {
    }

    static File dir() {
        String override = System.getProperty("tfedge.golden");
        if (override != null && !override.isEmpty()) {
            return new File(override);
        }
        URL url = Golden.class.getClassLoader().getResource("golden/unit.json");
        if (url == null) {
            throw new IllegalStateException("golden/unit.json is not on the test classpath: add "
                    + "src/test/resources (or set -Dtfedge.golden=DIR)");
        }
        try {
            return new File(url.toURI()).getParentFile();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static File bundleDir() {
        return new File(dir(), "bundle");
    }

    static JSONObject load(String name) throws IOException, JSONException {
        byte[] data = Files.readAllBytes(new File(dir(), name).toPath());
        return new JSONObject(new String(data, StandardCharsets.UTF_8));
    }

    /** The bytes of a golden ARRAY ({shape, dtype, data: base64 little-endian}). */
    static byte[] bytes(JSONObject array) throws JSONException {
        return Base64.getDecoder().decode(array.getString("data"));
    }

    static int[] shape(JSONObject array) throws JSONException {
        JSONArray s = array.getJSONArray("shape");
        int[] out = new int[s.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = s.getInt(i);
        }
        return out;
    }

    static float[] floats(JSONArray a) throws JSONException {
        float[] out = new float[a.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) a.getDouble(i);
        }
        return out;
    }

    static double[] doubles(JSONArray a) throws JSONException {
        double[] out = new double[a.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.getDouble(i);
        }
        return out;
    }

    static int[] ints(JSONArray a) throws JSONException {
        int[] out = new int[a.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.getInt(i);
        }
        return out;
    }

    /**
     * JSON text of an org.json value that keeps a double a double ({@code 1.0} stays
     * {@code 1.0}; Android's org.json would write {@code 1}, which reads back as an integer).
     */
    static String write(Object v) throws JSONException {
        if (v == null || v == JSONObject.NULL) {
            return "null";
        }
        if (v instanceof String) {
            return JSONObject.quote((String) v);
        }
        if (v instanceof Boolean || v instanceof Integer || v instanceof Long) {
            return v.toString();
        }
        if (v instanceof Number) {
            return Double.toString(((Number) v).doubleValue());
        }
        StringBuilder b = new StringBuilder();
        if (v instanceof JSONArray) {
            JSONArray a = (JSONArray) v;
            b.append('[');
            for (int i = 0; i < a.length(); i++) {
                b.append(i == 0 ? "" : ",").append(write(a.get(i)));
            }
            return b.append(']').toString();
        }
        JSONObject o = (JSONObject) v;
        b.append('{');
        boolean first = true;
        for (Iterator<String> it = o.keys(); it.hasNext(); ) {
            String k = it.next();
            b.append(first ? "" : ",").append(JSONObject.quote(k)).append(':').append(write(o.get(k)));
            first = false;
        }
        return b.append('}').toString();
    }

    /** A deep copy of the golden bundle in a new temporary folder. */
    static File copyBundle() throws IOException {
        File dest = Files.createTempDirectory("tfedge-bundle-test").toFile();
        File[] files = bundleDir().listFiles();
        if (files == null) {
            throw new IOException("no golden bundle at " + bundleDir());
        }
        for (File f : files) {
            Files.copy(f.toPath(), new File(dest, f.getName()).toPath());
        }
        return dest;
    }

    static void deleteTree(File f) {
        File[] children = f.listFiles();
        if (children != null) {
            for (File c : children) {
                deleteTree(c);
            }
        }
        f.delete();
    }
}
