package jdiffusion.model.mmdit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Stability's model names of SD3 files, told from the MMDiT's tensors (and "turbo" in the name or metadata). */
class Sd3VariantTest {
    private static final Path TINY = Golden.model("tiny-sd35-fp16.safetensors");

    @TempDir
    Path tmp;

    /** A copy of the tiny SD3.5 Medium file without the tensors drop matches, with extra metadata. */
    private Path copy(String name, Predicate<String> drop, Map<String, String> metadata) throws Exception {
        Path out = tmp.resolve(name);
        try (SafeTensors src = SafeTensors.open(TINY)) {
            SafeTensorsWriter w = SafeTensorsWriter.to(out).metadata(metadata);
            for (String n : src.names()) {
                if (!drop.test(n)) {
                    w.addFrom(src, n, n, DType.F16);
                }
            }
            w.write();
        }
        return out;
    }

    @Test
    void theArchitectureTellsMediumLargeAndSd3() throws Exception {
        assertEquals(Optional.of(Sd3Variant.SD35_MEDIUM), Sd3Variant.of(TINY));
        // without the MMDiT-X second attention the same file is a 3.5 Large; without QK norm an SD3 Medium
        Path large = copy("large.safetensors", n -> n.contains(".attn2."), Map.of());
        assertEquals(Optional.of(Sd3Variant.SD35_LARGE), Sd3Variant.of(large));
        Path sd3 = copy("sd3.safetensors", n -> n.contains(".attn2.") || n.contains(".ln_q.")
                || n.contains(".ln_k."), Map.of());
        assertEquals(Optional.of(Sd3Variant.SD3_MEDIUM), Sd3Variant.of(sd3));
    }

    @Test
    void turboIsToldByNameOrMetadata() throws Exception {
        Path named = copy("sd3.5_large_TURBO.safetensors", n -> n.contains(".attn2."), Map.of());
        assertEquals(Optional.of(Sd3Variant.SD35_LARGE_TURBO), Sd3Variant.of(named));
        Path meta = copy("renamed.safetensors", n -> n.contains(".attn2."),
                Map.of("modelspec.title", "Stable Diffusion 3.5 Large Turbo"));
        assertEquals(Optional.of(Sd3Variant.SD35_LARGE_TURBO), Sd3Variant.of(meta));
        // a Medium stays a Medium whatever its name says
        Files.copy(TINY, tmp.resolve("medium_turbo.safetensors"));
        assertEquals(Optional.of(Sd3Variant.SD35_MEDIUM), Sd3Variant.of(tmp.resolve("medium_turbo.safetensors")));
        assertTrue(Sd3Variant.SD35_LARGE_TURBO.turbo());
    }

    @Test
    void apiNamesAndOtherFiles() throws Exception {
        assertEquals(Optional.of(Sd3Variant.SD35_LARGE_TURBO), Sd3Variant.byApiName(" SD3.5-Large-Turbo"));
        assertEquals(Optional.of(Sd3Variant.SD35_MEDIUM), Sd3Variant.byApiName("sd3.5-medium"));
        assertEquals(Optional.empty(), Sd3Variant.byApiName("sd3.5-flash"));
        assertEquals(Optional.empty(), Sd3Variant.byApiName(null));
        assertEquals(Optional.empty(), Sd3Variant.of(Golden.model("tiny-sd1-fp16.safetensors")));
        Path broken = copy("broken.safetensors", n -> n.endsWith("final_layer.linear.weight"), Map.of());
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Sd3Variant.of(broken));
        assertTrue(e.getMessage().contains("final_layer.linear.weight"), e.getMessage());
    }
}
