package jdiffusion;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.io.DType;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;

/**
 * Access to the golden folder: JDIFFUSION_GOLDEN, else ../shared/golden beside the repository root. Golden tests
 * discover their cases from the manifests found here, never from a list in code.
 */
public final class Golden {
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(com.fasterxml.jackson.core.json.JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());

    private Golden() {
    }

    public static Path dir() {
        String env = System.getenv("JDIFFUSION_GOLDEN");
        Path p;
        if (env != null && !env.isBlank()) {
            p = Path.of(env);
        } else {
            String root = System.getProperty("jdiffusion.root", System.getProperty("user.dir") + "/..");
            p = Path.of(root).resolve("../shared/golden").normalize();
        }
        if (!Files.isDirectory(p)) {
            throw new IllegalStateException("golden folder not found: " + p + " (set JDIFFUSION_GOLDEN)");
        }
        return p;
    }

    /** The manifests (case .json files) in the golden folder whose name starts with prefix, sorted. */
    public static List<Path> manifests(String prefix) {
        try (Stream<Path> s = Files.list(dir())) {
            List<Path> found = s.filter(f -> {
                String n = f.getFileName().toString();
                return n.startsWith(prefix) && n.endsWith(".json");
            }).sorted().toList();
            if (found.isEmpty()) {
                throw new IllegalStateException("no golden manifests '" + prefix + "*.json' in " + dir());
            }
            return found;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The manifests whose name starts with prefix in the golden folder's feature subfolder {@code sub} (searched
     * recursively, so hidden twins in nested folders are found too) and at the top level, sorted by case name. An
     * empty result fails: a missing golden folder must not pass silently.
     */
    public static List<Path> manifestsIn(String sub, String prefix) {
        Path root = dir();
        try (Stream<Path> top = Files.list(root); Stream<Path> feature = Files.isDirectory(root.resolve(sub))
                ? Files.walk(root.resolve(sub)) : Stream.empty()) {
            List<Path> found = Stream.concat(top, feature).filter(f -> {
                String n = f.getFileName().toString();
                return Files.isRegularFile(f) && n.startsWith(prefix) && n.endsWith(".json");
            }).distinct().sorted(java.util.Comparator.comparing(Golden::caseName)).toList();
            if (found.isEmpty()) {
                throw new IllegalStateException("no golden manifests '" + prefix + "*.json' in " + root.resolve(sub)
                        + " or " + root);
            }
            return found;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static String caseName(Path manifest) {
        String n = manifest.getFileName().toString();
        return n.substring(0, n.length() - ".json".length());
    }

    public static JsonNode json(Path file) {
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The tensors file next to a manifest (same name, .safetensors). */
    public static SafeTensors tensors(Path manifest) {
        Path st = manifest.resolveSibling(caseName(manifest) + ".safetensors");
        try {
            return SafeTensors.open(st);
        } catch (ModelFormatException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A model from the golden models folder. */
    public static Path model(String fileName) {
        return dir().resolve("models").resolve(fileName);
    }

    /** tiny-sdxl/diffusers/unet (a diffusers config's _name_or_path) -> models/tiny-sdxl-fp16.safetensors. */
    public static Path fp16Model(JsonNode diffusersConfig) {
        String name = diffusersConfig.get("_name_or_path").asText();
        return model(name.substring(0, name.indexOf('/')) + "-fp16.safetensors");
    }

    /** Writes (once per model) the F32 copy of an fp16 golden checkpoint into dir: the F32 loading path's input. */
    public static Path fp32Twin(Path fp16, Path dir) throws Exception {
        Path twin = dir.resolve(fp16.getFileName().toString().replace("-fp16.", "-fp32."));
        if (!Files.exists(twin)) {
            try (SafeTensors src = SafeTensors.open(fp16)) {
                SafeTensorsWriter.convert(src, twin, DType.F32, false);
            }
            try (SafeTensors check = SafeTensors.open(twin)) {
                String probe = "model.diffusion_model.input_blocks.0.0.weight";
                if (!check.contains(probe)) {
                    probe = check.names().stream().filter(n -> n.startsWith("model.diffusion_model.")).sorted()
                            .findFirst().orElseThrow();
                }
                DType written = check.info(probe).dtype();
                if (written != DType.F32) {
                    throw new AssertionError(twin + ": expected F32 weights, got " + written);
                }
            }
        }
        return twin;
    }

    /** The "shape" of a manifest's input or output entry. */
    public static int[] shape(JsonNode entry) {
        JsonNode s = entry.get("shape");
        int[] r = new int[s.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = s.get(i).asInt();
        }
        return r;
    }

    /** Max |a - b|. */
    public static double maxAbsDiff(float[] expected, float[] actual) {
        if (expected.length != actual.length) {
            throw new AssertionError("length mismatch: expected " + expected.length + " values, got " + actual.length);
        }
        double m = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs((double) expected[i] - actual[i]);
            if (Double.isNaN(d)) {
                return Double.POSITIVE_INFINITY;
            }
            m = Math.max(m, d);
        }
        return m;
    }

    /** Fails with the case, the tensor, the max difference and its index when any |expected - actual| > atol. */
    public static void assertClose(String what, float[] expected, float[] actual, double atol) {
        double m = maxAbsDiff(expected, actual);
        if (!(m <= atol)) {
            int worst = 0;
            double wd = -1;
            for (int i = 0; i < expected.length; i++) {
                double d = Math.abs((double) expected[i] - actual[i]);
                if (Double.isNaN(d) || d > wd) {
                    wd = Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
                    worst = i;
                }
            }
            throw new AssertionError(what + ": max |diff| " + m + " > atol " + atol + " at index " + worst + " (expected "
                    + expected[worst] + ", got " + actual[worst] + ")");
        }
    }
}
