package org.tfedge.demo;

import android.content.Context;
import android.content.SharedPreferences;

/** What the settings screen chooses: interpreter threads, operating point, bundle location. */
final class Settings {
    static final int[] THREAD_CHOICES = {1, 2, 4, 8};
    private static final String FILE = "tfedge";
    private static final String THREADS = "threads";
    private static final String OPERATING_POINT = "operating_point";
    private static final String BUNDLE_URI = "bundle_uri";

    private final SharedPreferences prefs;

    Settings(Context context) {
        prefs = context.getSharedPreferences(FILE, Context.MODE_PRIVATE);
    }

    int threads() {
        return prefs.getInt(THREADS, 2);
    }

    void setThreads(int threads) {
        prefs.edit().putInt(THREADS, threads).apply();
    }

    int operatingPoint() {
        return prefs.getInt(OPERATING_POINT, 0);
    }

    void setOperatingPoint(int index) {
        prefs.edit().putInt(OPERATING_POINT, index).apply();
    }

    /** A bundle .zip the user picked (a content:// URI), or null: the assets' bundle. */
    String bundleUri() {
        return prefs.getString(BUNDLE_URI, null);
    }

    void setBundleUri(String uri) {
        // A new bundle may have other operating points: start from its calibrated one.
        prefs.edit().putString(BUNDLE_URI, uri).putInt(OPERATING_POINT, 0).apply();
    }
}
