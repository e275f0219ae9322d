package org.tfedge.core;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/** A bundle's files held in memory (an unpacked zip; models of a few MB at most). */
public final class MemorySource implements BundleSource {
    private final Map<String, byte[]> files;
    private final String description;

    public MemorySource(Map<String, byte[]> files, String description) {
        this.files = Collections.unmodifiableMap(new LinkedHashMap<String, byte[]>(files));
        this.description = description;
    }

    @Override
    public long size(String name) {
        byte[] data = files.get(name);
        return data == null ? -1 : data.length;
    }

    @Override
    public byte[] read(String name) {
        return files.get(name).clone();
    }

    @Override
    public String describe() {
        return description;
    }

    public Map<String, byte[]> files() {
        return files;
    }
}
