package org.tfedge.demo;

import android.content.Context;
import android.net.Uri;

import java.io.IOException;
import java.io.InputStream;
import java.util.Collections;
import java.util.List;

import org.tfedge.core.Bundle;
import org.tfedge.core.BundleException;
import org.tfedge.core.OperatingPoint;
import org.tfedge.core.ZipBundle;

/** Loads the bundle the settings name: a picked .zip, else the one in the app's assets. */
final class BundleLoader {
    private static volatile List<OperatingPoint> lastPoints = Collections.emptyList();

    private BundleLoader() {
    }

    /** The operating points of the bundle loaded last (for the settings screen). */
    static List<OperatingPoint> lastOperatingPoints() {
        return lastPoints;
    }

    static Bundle loadAndRemember(Context context, Settings settings)
            throws IOException, BundleException {
        Bundle bundle = load(context, settings);
        lastPoints = bundle.manifest.operatingPoints();
        return bundle;
    }

    static Bundle load(Context context, Settings settings) throws IOException, BundleException {
        String uri = settings.bundleUri();
        if (uri != null) {
            InputStream in = context.getContentResolver().openInputStream(Uri.parse(uri));
            if (in == null) {
                throw new IOException("cannot open " + uri + ": pick the bundle again in Settings");
            }
            try {
                return Bundle.load(ZipBundle.read(in, uri));
            } finally {
                in.close();
            }
        }
        AssetSource assets = new AssetSource(context.getAssets(), AssetSource.FOLDER);
        if (!assets.exists()) {
            throw new BundleException("no bundle: copy a tfedge-convert bundle folder to "
                    + "app/src/main/assets/bundle and rebuild, or pick a bundle .zip in Settings");
        }
        return Bundle.load(assets);
    }
}
