package org.tfedge.core;

import java.util.Iterator;
import java.util.List;

import org.json.JSONArray;
import org.json.JSONObject;

/**
 * Values written as Python's {@code repr} writes them, so refusals read like the Python
 * reader's ({@code 'top5'}, {@code None}, {@code True}, {@code [1, 16, 16, 3]}, {@code 1.5}).
 */
final class Py {
    private Py() {
    }

    static String str(String s) {
        boolean useDouble = s.indexOf('\'') >= 0 && s.indexOf('"') < 0;
        char quote = useDouble ? '"' : '\'';
        StringBuilder b = new StringBuilder().append(quote);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == quote || c == '\\') {
                b.append('\\').append(c);
            } else if (c == '\n') {
                b.append("\\n");
            } else if (c == '\r') {
                b.append("\\r");
            } else if (c == '\t') {
                b.append("\\t");
            } else if (c < 0x20 || c == 0x7f) {
                b.append(String.format("\\x%02x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append(quote).toString();
    }

    /** A double as Python's repr: {@code 1.0}, {@code 0.5}, {@code 1e-05}, {@code inf}. */
    static String number(double v) {
        if (Double.isNaN(v)) {
            return "nan";
        }
        if (Double.isInfinite(v)) {
            return v > 0 ? "inf" : "-inf";
        }
        if (v == Math.rint(v) && Math.abs(v) < 1e16) {
            return Long.toString((long) v) + ".0";
        }
        String s = Double.toString(v);
        int e = s.indexOf('E');
        if (e < 0) {
            return s;
        }
        String mantissa = s.substring(0, e);
        if (mantissa.endsWith(".0")) {
            mantissa = mantissa.substring(0, mantissa.length() - 2);
        }
        int exponent = Integer.parseInt(s.substring(e + 1));
        if (exponent >= -4 && exponent < 16) {
            return new java.math.BigDecimal(s).toPlainString();
        }
        return mantissa + "e" + (exponent < 0 ? "-" : "+") + (Math.abs(exponent) < 10 ? "0" : "")
                + Math.abs(exponent);
    }

    static String list(int[] values) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < values.length; i++) {
            b.append(i == 0 ? "" : ", ").append(values[i]);
        }
        return b.append(']').toString();
    }

    static String strings(List<String> values) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < values.size(); i++) {
            b.append(i == 0 ? "" : ", ").append(str(values.get(i)));
        }
        return b.append(']').toString();
    }

    /** Any value org.json produces. */
    static String value(Object v) {
        if (v == null || v == JSONObject.NULL) {
            return "None";
        }
        if (v instanceof String) {
            return str((String) v);
        }
        if (v instanceof Boolean) {
            return ((Boolean) v) ? "True" : "False";
        }
        if (v instanceof Integer || v instanceof Long) {
            return v.toString();
        }
        if (v instanceof Number) {
            return number(((Number) v).doubleValue());
        }
        if (v instanceof JSONArray) {
            JSONArray a = (JSONArray) v;
            StringBuilder b = new StringBuilder("[");
            for (int i = 0; i < a.length(); i++) {
                b.append(i == 0 ? "" : ", ").append(value(a.opt(i)));
            }
            return b.append(']').toString();
        }
        if (v instanceof JSONObject) {
            JSONObject o = (JSONObject) v;
            StringBuilder b = new StringBuilder("{");
            boolean first = true;
            for (Iterator<String> it = o.keys(); it.hasNext(); ) {
                String k = it.next();
                b.append(first ? "" : ", ").append(str(k)).append(": ").append(value(o.opt(k)));
                first = false;
            }
            return b.append('}').toString();
        }
        return String.valueOf(v);
    }

    /** Python's type name of a JSON value, for "must be a JSON object, got list". */
    static String typeName(Object v) {
        if (v == null || v == JSONObject.NULL) {
            return "NoneType";
        }
        if (v instanceof String) {
            return "str";
        }
        if (v instanceof Boolean) {
            return "bool";
        }
        if (v instanceof Integer || v instanceof Long) {
            return "int";
        }
        if (v instanceof Number) {
            return "float";
        }
        if (v instanceof JSONArray) {
            return "list";
        }
        if (v instanceof JSONObject) {
            return "dict";
        }
        return v.getClass().getSimpleName();
    }
}
