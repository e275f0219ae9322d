package org.tfedge.demo;

import android.app.Activity;
import android.content.Intent;
import android.net.Uri;
import android.os.Bundle;
import android.view.View;
import android.widget.AdapterView;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.LinearLayout;
import android.widget.Spinner;
import android.widget.TextView;

import java.util.ArrayList;
import java.util.List;

import org.tfedge.core.OperatingPoint;

/**
 * Threads, the operating point (shown only when the bundle has several) and which bundle to
 * use. Framework classes only, laid out in code and without generated resources ({@code R}),
 * so it compiles against {@code android.jar} alone.
 */
public class SettingsActivity extends Activity {
    private static final int PICK_BUNDLE = 1;
    private Settings settings;
    private TextView bundleLine;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        settings = new Settings(this);
        LinearLayout layout = new LinearLayout(this);
        layout.setOrientation(LinearLayout.VERTICAL);
        int pad = (int) (16 * getResources().getDisplayMetrics().density);
        layout.setPadding(pad, pad, pad, pad);

        layout.addView(label("Interpreter threads"));
        Spinner threads = new Spinner(this);
        List<String> choices = new ArrayList<String>();
        int selected = 0;
        for (int i = 0; i < Settings.THREAD_CHOICES.length; i++) {
            choices.add(Integer.toString(Settings.THREAD_CHOICES[i]));
            if (Settings.THREAD_CHOICES[i] == settings.threads()) {
                selected = i;
            }
        }
        threads.setAdapter(new ArrayAdapter<String>(this,
                android.R.layout.simple_spinner_dropdown_item, choices));
        threads.setSelection(selected);
        threads.setOnItemSelectedListener(new Selected() {
            @Override
            public void onItemSelected(AdapterView<?> parent, View view, int position, long id) {
                settings.setThreads(Settings.THREAD_CHOICES[position]);
            }
        });
        layout.addView(threads);

        List<OperatingPoint> points = BundleLoader.lastOperatingPoints();
        if (points.size() > 1) {
            layout.addView(label("Operating point (accuracy / speed)"));
            Spinner spinner = new Spinner(this);
            spinner.setAdapter(new ArrayAdapter<OperatingPoint>(this,
                    android.R.layout.simple_spinner_dropdown_item, points));
            spinner.setSelection(Math.min(settings.operatingPoint(), points.size() - 1));
            spinner.setOnItemSelectedListener(new Selected() {
                @Override
                public void onItemSelected(AdapterView<?> parent, View view, int position,
                                           long id) {
                    settings.setOperatingPoint(position);
                }
            });
            layout.addView(spinner);
        } else if (points.size() == 1) {
            layout.addView(label("This bundle has one operating point: %1$s", points.get(0).name));
        }

        bundleLine = label("");
        layout.addView(bundleLine);
        showBundle();
        Button pick = new Button(this);
        pick.setText("Pick a bundle .zip\u2026");
        pick.setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                Intent intent = new Intent(Intent.ACTION_OPEN_DOCUMENT);
                intent.addCategory(Intent.CATEGORY_OPENABLE);
                intent.setType("application/zip");
                startActivityForResult(intent, PICK_BUNDLE);
            }
        });
        layout.addView(pick);
        Button assets = new Button(this);
        assets.setText("Use the bundle in the app's assets");
        assets.setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                settings.setBundleUri(null);
                showBundle();
            }
        });
        layout.addView(assets);
        setContentView(layout);
    }

    private TextView label(String format, Object... args) {
        TextView t = new TextView(this);
        t.setText(args.length == 0 ? format : String.format(format, args));
        t.setPadding(0, t.getPaddingTop() + 24, 0, 8);
        return t;
    }

    private void showBundle() {
        String uri = settings.bundleUri();
        bundleLine.setText("Bundle: " + (uri == null ? "assets/" + AssetSource.FOLDER : uri));
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        super.onActivityResult(requestCode, resultCode, data);
        if (requestCode == PICK_BUNDLE && resultCode == RESULT_OK && data != null
                && data.getData() != null) {
            Uri uri = data.getData();
            // Keep the right to read it after a restart.
            getContentResolver().takePersistableUriPermission(uri,
                    Intent.FLAG_GRANT_READ_URI_PERMISSION);
            settings.setBundleUri(uri.toString());
            showBundle();
        }
    }

    /** A selection listener that ignores "nothing selected". */
    private abstract static class Selected implements AdapterView.OnItemSelectedListener {
        @Override
        public void onNothingSelected(AdapterView<?> parent) {
        }
    }
}
