package org.tfedge.core;

/**
 * One accuracy/speed trade-off of a cascade: a threshold per stage (null: always exit).
 *
 * <p>A version 1 manifest holds one set of thresholds (the calibrated one), so
 * {@link Manifest#operatingPoints()} has one entry; the settings screen offers a choice only
 * when a bundle has several (a later manifest version may list more).
 */
public final class OperatingPoint {
    public final String name;
    private final Double[] thresholds;

    public OperatingPoint(String name, Double[] thresholds) {
        this.name = name;
        this.thresholds = thresholds.clone();
    }

    public Double threshold(int stage) {
        return thresholds[stage];
    }

    public int stageCount() {
        return thresholds.length;
    }

    @Override
    public String toString() {
        return name;
    }
}
