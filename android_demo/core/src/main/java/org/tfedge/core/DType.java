package org.tfedge.core;

/** The tensor element types a bundle may name ({@code docs/bundle.md}, tensor specs). */
public enum DType {
    INT8("int8", -128, 127, 1),
    UINT8("uint8", 0, 255, 1),
    INT16("int16", -32768, 32767, 2),
    FLOAT32("float32", 0, 0, 4);

    /** The name used in manifest.json. */
    public final String jsonName;
    /** Smallest and largest code of an integer type (0 for float32). */
    public final int min;
    public final int max;
    /** Bytes per element in a tensor buffer. */
    public final int bytes;

    DType(String jsonName, int min, int max, int bytes) {
        this.jsonName = jsonName;
        this.min = min;
        this.max = max;
        this.bytes = bytes;
    }

    public boolean isInteger() {
        return this != FLOAT32;
    }

    /** The type named {@code name} in a manifest, or null when there is none. */
    public static DType fromJsonName(String name) {
        for (DType t : values()) {
            if (t.jsonName.equals(name)) {
                return t;
            }
        }
        return null;
    }

    /** The manifest names in the Python reader's order: integer types, then float ones. */
    public static String choices() {
        return "int8, uint8, int16, float32";
    }
}
