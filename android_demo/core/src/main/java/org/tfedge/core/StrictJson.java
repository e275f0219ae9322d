package org.tfedge.core;

import java.math.BigInteger;

import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The manifest's JSON, read by the rules of the Python reader ({@code
 * tfedge.runtime.bundle._loads_manifest}; {@code docs/bundle.md}, "Reading rules"), into
 * org.json objects.
 *
 * <p>Android's {@code JSONTokener} is lenient where Python's {@code json} is not (comments,
 * single quotes, unquoted strings, {@code NaN}, {@code =>}) and keeps the last of two equal
 * keys, so the two readers could see different manifests in the same bytes. This one accepts
 * exactly RFC 8259 JSON and also refuses what the Python reader refuses on top of it: {@code
 * NaN} and {@code Infinity}, a key twice in one object, a number that overflows a double, a
 * whole number beyond 64 bits, and nesting deeper than {@link #MAX_DEPTH} (measured as
 * Python measures it, before parsing, so the message names the same depth).
 */
final class StrictJson {
    /** Nesting of arrays and objects a manifest may have (a real one has about 5). */
    static final int MAX_DEPTH = 32;

    private final String text;
    private int pos;

    private StrictJson(String text) {
        this.text = text;
    }

    /** The JSON value of {@code text}; refusals are worded as the Python reader's. */
    static Object parse(String text) throws BundleException {
        int depth = nestingDepth(text);
        if (depth > MAX_DEPTH) {
            throw new BundleException("manifest.json nests arrays and objects " + depth
                    + " deep, over the " + MAX_DEPTH + " a manifest may: " + JsonReader.REBUILD);
        }
        StrictJson reader = new StrictJson(text);
        try {
            reader.skipSpace();
            Object value = reader.value(0);
            reader.skipSpace();
            if (reader.pos != text.length()) {
                throw reader.error("Extra data");
            }
            return value;
        } catch (JSONException e) { // org.json refusing a value (cannot happen: all checked)
            throw invalid(e.getMessage());
        }
    }

    private static BundleException invalid(String why) {
        return new BundleException("manifest.json is not valid JSON (" + why + "): "
                + JsonReader.REBUILD);
    }

    /**
     * The deepest nesting of '[' and '{' outside strings: Python removes every {@code
     * "(?:[^"\\]|\\.)*"} match first, then counts.
     */
    static int nestingDepth(String text) {
        int depth = 0;
        int deepest = 0;
        int i = 0;
        while (i < text.length()) {
            char c = text.charAt(i);
            if (c == '"') {
                int end = stringEnd(text, i);
                if (end > 0) {
                    i = end + 1;
                    continue;
                }
            } else if (c == '[' || c == '{') {
                deepest = Math.max(deepest, ++depth);
            } else if (c == ']' || c == '}') {
                depth--;
            }
            i++;
        }
        return deepest;
    }

    /** The index of the quote closing the string opened at {@code start}; -1 if none. */
    private static int stringEnd(String text, int start) {
        int k = start + 1;
        while (k < text.length()) {
            char c = text.charAt(k);
            if (c == '\\') {
                k += 2;
            } else if (c == '"') {
                return k;
            } else {
                k++;
            }
        }
        return -1;
    }

    private BundleException error(String what) {
        int line = 1;
        int column = 1;
        for (int i = 0; i < pos && i < text.length(); i++) {
            if (text.charAt(i) == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
        return invalid(what + ": line " + line + " column " + column + " (char " + pos + ")");
    }

    private void skipSpace() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    private Object value(int depth) throws BundleException, JSONException {
        if (depth > MAX_DEPTH) { // the pre-count already refused deeper text; a safety net
            throw error("nested too deep");
        }
        if (pos >= text.length()) {
            throw error("Expecting value");
        }
        char c = text.charAt(pos);
        switch (c) {
            case '{':
                return object(depth);
            case '[':
                return array(depth);
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", JSONObject.NULL);
            case 'N':
                constant("NaN");
                break;
            case 'I':
                constant("Infinity");
                break;
            default:
                if (c == '-' && text.startsWith("-Infinity", pos)) {
                    constant("-Infinity");
                }
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
        }
        throw error("Expecting value");
    }

    private void constant(String name) throws BundleException {
        if (text.startsWith(name, pos)) {
            throw invalid(name + " is not a JSON number");
        }
    }

    private Object literal(String word, Object value) throws BundleException {
        if (!text.startsWith(word, pos)) {
            throw error("Expecting value");
        }
        pos += word.length();
        return value;
    }

    private JSONObject object(int depth) throws BundleException, JSONException {
        JSONObject obj = new JSONObject();
        pos++; // '{'
        skipSpace();
        if (pos < text.length() && text.charAt(pos) == '}') {
            pos++;
            return obj;
        }
        while (true) {
            if (pos >= text.length() || text.charAt(pos) != '"') {
                throw error("Expecting property name enclosed in double quotes");
            }
            String key = string();
            skipSpace();
            if (pos >= text.length() || text.charAt(pos) != ':') {
                throw error("Expecting ':' delimiter");
            }
            pos++;
            skipSpace();
            Object v = value(depth + 1);
            if (obj.has(key)) {
                throw invalid("the key " + Py.str(key.length() > 60 ? key.substring(0, 60) : key)
                        + " appears twice in one object");
            }
            obj.put(key, v);
            skipSpace();
            if (pos < text.length() && text.charAt(pos) == ',') {
                pos++;
                skipSpace();
                continue;
            }
            if (pos < text.length() && text.charAt(pos) == '}') {
                pos++;
                return obj;
            }
            throw error("Expecting ',' delimiter");
        }
    }

    private JSONArray array(int depth) throws BundleException, JSONException {
        JSONArray arr = new JSONArray();
        pos++; // '['
        skipSpace();
        if (pos < text.length() && text.charAt(pos) == ']') {
            pos++;
            return arr;
        }
        while (true) {
            arr.put(value(depth + 1));
            skipSpace();
            if (pos < text.length() && text.charAt(pos) == ',') {
                pos++;
                skipSpace();
                continue;
            }
            if (pos < text.length() && text.charAt(pos) == ']') {
                pos++;
                return arr;
            }
            throw error("Expecting ',' delimiter");
        }
    }

    private String string() throws BundleException {
        StringBuilder b = new StringBuilder();
        pos++; // '"'
        while (true) {
            if (pos >= text.length()) {
                throw error("Unterminated string starting at");
            }
            char c = text.charAt(pos++);
            if (c == '"') {
                return b.toString();
            }
            if (c < 0x20) {
                pos--;
                throw error("Invalid control character at");
            }
            if (c != '\\') {
                b.append(c);
                continue;
            }
            if (pos >= text.length()) {
                throw error("Unterminated string starting at");
            }
            char e = text.charAt(pos++);
            switch (e) {
                case '"': b.append('"'); break;
                case '\\': b.append('\\'); break;
                case '/': b.append('/'); break;
                case 'b': b.append('\b'); break;
                case 'f': b.append('\f'); break;
                case 'n': b.append('\n'); break;
                case 'r': b.append('\r'); break;
                case 't': b.append('\t'); break;
                case 'u':
                    if (pos + 4 > text.length()) {
                        throw error("Invalid \\uXXXX escape");
                    }
                    int code = 0;
                    for (int k = 0; k < 4; k++) {
                        int d = Character.digit(text.charAt(pos + k), 16);
                        if (d < 0 || text.charAt(pos + k) > 'f') { // ASCII hex digits only
                            throw error("Invalid \\uXXXX escape");
                        }
                        code = code * 16 + d;
                    }
                    pos += 4;
                    b.append((char) code);
                    break;
                default:
                    pos -= 2;
                    throw error("Invalid \\escape");
            }
        }
    }

    private Object number() throws BundleException {
        int start = pos;
        if (text.charAt(pos) == '-') {
            pos++;
        }
        if (pos < text.length() && text.charAt(pos) == '0') {
            pos++;
        } else if (pos < text.length() && isDigit(text.charAt(pos))) {
            while (pos < text.length() && isDigit(text.charAt(pos))) {
                pos++;
            }
        } else {
            pos = start;
            throw error("Expecting value");
        }
        boolean integer = true;
        if (pos + 1 < text.length() && text.charAt(pos) == '.' && isDigit(text.charAt(pos + 1))) {
            integer = false;
            pos++;
            while (pos < text.length() && isDigit(text.charAt(pos))) {
                pos++;
            }
        }
        if (pos < text.length() && (text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
            int mark = pos;
            int k = pos + 1;
            if (k < text.length() && (text.charAt(k) == '+' || text.charAt(k) == '-')) {
                k++;
            }
            if (k < text.length() && isDigit(text.charAt(k))) {
                while (k < text.length() && isDigit(text.charAt(k))) {
                    k++;
                }
                pos = k;
                integer = false;
            } else {
                pos = mark; // Python stops the number before a bare 'e' (then: extra data)
            }
        }
        String literal = text.substring(start, pos);
        if (integer) {
            BigInteger value = new BigInteger(literal);
            if (value.bitLength() > 63) {
                throw invalid("the whole number " + head(literal) + " does not fit in 64 bits");
            }
            long v = value.longValue();
            if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
                return Integer.valueOf((int) v); // as org.json's own parser gives small ones
            }
            return Long.valueOf(v);
        }
        double d = Double.parseDouble(literal);
        if (Double.isInfinite(d)) {
            throw invalid("the number " + head(literal) + " is too large for a double");
        }
        return Double.valueOf(d);
    }

    private static String head(String literal) {
        return literal.length() > 40 ? literal.substring(0, 40) : literal;
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }
}
