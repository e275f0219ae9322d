package org.tfedge.demo;

import android.Manifest;
import android.content.Intent;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.graphics.Matrix;
import android.os.Bundle;
import android.util.Size;
import android.view.View;
import android.widget.TextView;

import androidx.activity.ComponentActivity;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageAnalysis;
import androidx.camera.core.ImageProxy;
import androidx.camera.core.Preview;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.camera.view.PreviewView;
import androidx.core.content.ContextCompat;

import com.google.common.util.concurrent.ListenableFuture;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import org.tfedge.core.EdgePipeline;
import org.tfedge.core.FrameResult;
import org.tfedge.core.OperatingPoint;

/**
 * Camera frames -> predictor -> crop -> cascade with early exit, on screen: label, confidence,
 * exit stage and milliseconds. CameraX's ImageAnalysis keeps only the latest frame
 * (STRATEGY_KEEP_ONLY_LATEST): while a frame is classified, newer ones replace each other
 * instead of queueing, so the result never lags behind the camera.
 */
public class MainActivity extends ComponentActivity {
    private static final int CAMERA_REQUEST = 1;
    private final ExecutorService analysis = Executors.newSingleThreadExecutor();
    private TextView result;
    private volatile EdgePipeline pipeline;
    private int[] pixels = new int[0];

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        setContentView(R.layout.activity_main);
        result = findViewById(R.id.result);
        findViewById(R.id.settings).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                startActivity(new Intent(MainActivity.this, SettingsActivity.class));
            }
        });
        if (checkSelfPermission(Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera();
        } else {
            requestPermissions(new String[] {Manifest.permission.CAMERA}, CAMERA_REQUEST);
        }
    }

    @Override
    protected void onResume() {
        super.onResume();
        // (Re)load on the analysis thread: the settings may have changed the bundle or threads.
        analysis.execute(new Runnable() {
            @Override
            public void run() {
                loadPipeline();
            }
        });
    }

    private void loadPipeline() {
        Settings settings = new Settings(this);
        EdgePipeline old = pipeline;
        pipeline = null;
        if (old != null) {
            old.close();
        }
        try {
            org.tfedge.core.Bundle bundle = BundleLoader.loadAndRemember(this, settings);
            EdgePipeline p = new EdgePipeline(bundle, new LiteRtEngine(), settings.threads());
            List<OperatingPoint> points = bundle.manifest.operatingPoints();
            p.setOperatingPoint(points.get(Math.min(settings.operatingPoint(), points.size() - 1)));
            pipeline = p;
            show(p.describe());
        } catch (Exception e) {
            show(e.getMessage());
        }
    }

    @Override
    public void onRequestPermissionsResult(int requestCode, String[] permissions, int[] grants) {
        super.onRequestPermissionsResult(requestCode, permissions, grants);
        if (grants.length > 0 && grants[0] == PackageManager.PERMISSION_GRANTED) {
            startCamera();
        } else {
            show(getString(R.string.no_camera_permission));
        }
    }

    private void startCamera() {
        final ListenableFuture<ProcessCameraProvider> future =
                ProcessCameraProvider.getInstance(this);
        future.addListener(new Runnable() {
            @Override
            public void run() {
                try {
                    bind(future.get());
                } catch (Exception e) {
                    show("camera: " + e.getMessage());
                }
            }
        }, ContextCompat.getMainExecutor(this));
    }

    private void bind(ProcessCameraProvider provider) {
        PreviewView view = findViewById(R.id.preview);
        Preview preview = new Preview.Builder().build();
        preview.setSurfaceProvider(view.getSurfaceProvider());
        ImageAnalysis imageAnalysis = new ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .setTargetResolution(new Size(640, 480))
                .build();
        imageAnalysis.setAnalyzer(analysis, new ImageAnalysis.Analyzer() {
            @Override
            public void analyze(ImageProxy image) {
                try {
                    classify(image);
                } finally {
                    image.close();
                }
            }
        });
        provider.unbindAll();
        provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, imageAnalysis);
    }

    private void classify(ImageProxy image) {
        EdgePipeline p = pipeline;
        if (p == null) {
            return;
        }
        long start = System.nanoTime();
        Bitmap frame = upright(image.toBitmap(), image.getImageInfo().getRotationDegrees());
        int width = frame.getWidth();
        int height = frame.getHeight();
        if (pixels.length != width * height) {
            pixels = new int[width * height];
        }
        frame.getPixels(pixels, 0, width, 0, 0, width, height);
        double convertMs = (System.nanoTime() - start) * 1e-6;
        try {
            FrameResult r = p.classify(pixels, width, height);
            StringBuilder stages = new StringBuilder();
            for (double ms : r.stageMs) {
                stages.append(stages.length() == 0 ? "" : " + ")
                        .append(String.format(Locale.ROOT, "%.1f", ms));
            }
            show(String.format(Locale.ROOT,
                    "%s  %.1f%%\nexit stage %d of %d (%s)\npredictor %s ms%s, stages %s ms\n"
                            + "frame %dx%d: convert %.1f ms, pipeline %.1f ms",
                    r.label, 100 * r.score, r.exitStage + 1, p.bundle.manifest.stages.size(),
                    p.bundle.manifest.stages.get(r.exitStage).name,
                    r.predictorMs == null ? "-" : String.format(Locale.ROOT, "%.1f", r.predictorMs),
                    r.refinerMs == null ? "" : String.format(Locale.ROOT, ", refiner %.1f ms",
                            r.refinerMs),
                    stages, width, height, convertMs, r.pipelineMs));
        } catch (Exception e) {
            show(e.getMessage());
        }
    }

    /** The frame turned the way the phone is held (the sensor's frames are rotated). */
    private static Bitmap upright(Bitmap bitmap, int degrees) {
        if (degrees == 0) {
            return bitmap;
        }
        Matrix m = new Matrix();
        m.postRotate(degrees);
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.getWidth(), bitmap.getHeight(), m, true);
    }

    private void show(final String text) {
        runOnUiThread(new Runnable() {
            @Override
            public void run() {
                result.setText(text);
            }
        });
    }

    @Override
    protected void onDestroy() {
        super.onDestroy();
        analysis.execute(new Runnable() {
            @Override
            public void run() {
                EdgePipeline p = pipeline;
                pipeline = null;
                if (p != null) {
                    p.close();
                }
            }
        });
        analysis.shutdown();
    }
}
