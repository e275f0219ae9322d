import java.io.File;
import java.util.ArrayList;
import java.util.List;

import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

import com.sun.source.util.JavacTask;

/**
 * Parses Java sources with javac's own parser, without resolving any type: a syntax check for
 * sources whose libraries (android.jar, AndroidX, CameraX, LiteRT) are not available here.
 *   java android_demo/tools/ParseOnly.java FILE.java ...
 */
public class ParseOnly {
    public static void main(String[] args) throws Exception {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        StandardJavaFileManager files = javac.getStandardFileManager(diagnostics, null, null);
        List<File> sources = new ArrayList<>();
        for (String a : args) {
            sources.add(new File(a));
        }
        JavacTask task = (JavacTask) javac.getTask(null, files, diagnostics,
                List.of("--release", "8", "-proc:none"), null,
                files.getJavaFileObjectsFromFiles(sources));
        task.parse();
        int errors = 0;
        for (Diagnostic<? extends JavaFileObject> d : diagnostics.getDiagnostics()) {
            if (d.getKind() == Diagnostic.Kind.ERROR) {
                errors++;
                System.err.println(d);
            }
        }
        System.out.println("parsed " + sources.size() + " files, " + errors + " syntax errors");
        System.exit(errors == 0 ? 0 : 1);
    }
}
