package org.tfedge.core;

import org.json.JSONArray;
import org.json.JSONObject;

/**
 * Typed access to one manifest object, with refusals naming the field's path, worded as the
 * Python reader's ({@code tfedge.bundle._Reader}).
 */
final class JsonReader {
    static final String REBUILD = "rebuild the bundle with tfedge-convert";
    static final String REBUILD_OR_UPGRADE = "rebuild the bundle with tfedge-convert, or upgrade "
            + "the app if a newer tfedge wrote it";

    final JSONObject obj;
    final String where;

    JsonReader(Object obj, String where) throws BundleException {
        if (!(obj instanceof JSONObject)) {
            throw fail("manifest.json: " + (where.isEmpty() ? "the manifest" : where)
                    + " must be a JSON object, got " + Py.typeName(obj));
        }
        this.obj = (JSONObject) obj;
        this.where = where;
    }

    static BundleException fail(String message) {
        return new BundleException(message + ": " + REBUILD);
    }

    static BundleException fail(String message, String fix) {
        return new BundleException(message + ": " + fix);
    }

    String path(String key) {
        return where.isEmpty() ? key : where + "." + key;
    }

    /** The value of {@code key}; JSON null is returned as Java null. */
    Object get(String key) throws BundleException {
        if (!obj.has(key)) {
            throw fail("manifest.json: missing field '" + path(key) + "'");
        }
        Object v = obj.opt(key);
        return v == JSONObject.NULL ? null : v;
    }

    String string(String key) throws BundleException {
        Object v = get(key);
        if (!(v instanceof String) || ((String) v).isEmpty()) {
            throw fail("manifest.json: '" + path(key) + "' must be a non-empty string, got "
                    + Py.value(v));
        }
        return (String) v;
    }

    static boolean isInt(Object v) {
        return v instanceof Integer || v instanceof Long;
    }

    static boolean isNumber(Object v) {
        if (isInt(v)) {
            return true;
        }
        if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            return !Double.isNaN(d) && !Double.isInfinite(d);
        }
        return false;
    }

    long integer(String key, long minimum) throws BundleException {
        Object v = get(key);
        if (!isInt(v) || ((Number) v).longValue() < minimum) {
            throw fail("manifest.json: '" + path(key) + "' must be a whole number >= " + minimum
                    + ", got " + Py.value(v));
        }
        return ((Number) v).longValue();
    }

    double number(String key) throws BundleException {
        Object v = get(key);
        if (!isNumber(v) || ((Number) v).doubleValue() < 0.0) {
            throw fail("manifest.json: '" + path(key) + "' must be a number >= 0.0, got "
                    + Py.value(v));
        }
        return ((Number) v).doubleValue();
    }

    JSONObject mapping(String key) throws BundleException {
        Object v = get(key);
        if (!(v instanceof JSONObject)) {
            throw fail("manifest.json: '" + path(key) + "' must be a JSON object, got "
                    + Py.typeName(v));
        }
        return (JSONObject) v;
    }

    String choice(String key, String[] choices, String shown) throws BundleException {
        Object v = get(key);
        for (String c : choices) {
            if (c.equals(v)) {
                return c;
            }
        }
        throw fail("manifest.json: '" + path(key) + "' is " + Py.value(v) + ", expected one of "
                + shown, REBUILD_OR_UPGRADE);
    }

    static String joined(String[] values) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < values.length; i++) {
            b.append(i == 0 ? "" : ", ").append(values[i]);
        }
        return b.toString();
    }

    static JSONArray array(Object v) {
        return v instanceof JSONArray ? (JSONArray) v : null;
    }
}
