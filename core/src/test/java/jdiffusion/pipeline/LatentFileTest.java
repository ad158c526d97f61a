package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.Map;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LatentFileTest {
    @TempDir
    Path dir;

    @Test
    void writesOneF32TensorReadableBySafeTensorsAndNeverOverwrites() throws Exception {
        float[] latent = new float[2 * 4 * 3 * 5];
        for (int i = 0; i < latent.length; i++) {
            latent[i] = (float) Math.sin(i) * 10;
        }
        int[] shape = {2, 4, 3, 5};
        Path first = LatentFile.write(dir.resolve("l.safetensors"), latent, shape, Map.of("note", "a \"quoted\"\nline"));
        Path second = LatentFile.write(dir.resolve("l.safetensors"), new float[latent.length], shape, Map.of());
        assertEquals(dir.resolve("l.safetensors"), first);
        assertEquals(dir.resolve("l_1.safetensors"), second);
        try (SafeTensors st = SafeTensors.open(first)) {
            assertEquals(java.util.Set.of("latent"), st.names());
            assertEquals(DType.F32, st.info("latent").dtype());
            assertArrayEquals(shape, st.info("latent").dims());
            assertArrayEquals(latent, st.floats("latent"));
            assertEquals("a \"quoted\"\nline", st.metadata().get("note"));
        }
    }
}
