package jdiffusion.cli;

import static jdiffusion.cli.CliTests.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import jdiffusion.cli.CliTests.Result;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code jdiffusion info} on a separate T5 encoder file (the t5xxl_fp8_e4m3fn.safetensors layout). */
class InfoT5Test {
    @TempDir
    Path dir;

    private Path t5File(DType dtype) throws Exception {
        Path out = dir.resolve("t5xxl_tiny_" + dtype + ".safetensors");
        String prefix = "text_encoders.t5xxl.transformer.";
        try (SafeTensors ckpt = SafeTensors.open(CliTests.golden().resolve("models").resolve("tiny-sd35-fp16.safetensors"))) {
            SafeTensorsWriter w = SafeTensorsWriter.to(out);
            for (String n : ckpt.names()) {
                if (n.startsWith(prefix)) {
                    w.addFrom(ckpt, n, n.substring(prefix.length()), dtype);
                }
            }
            w.write();
        }
        return out;
    }

    @Test
    void separateFp8T5() throws Exception {
        Result r = run("info", t5File(DType.F8_E4M3).toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("T5 encoder alone, 21 tensors"), r.out());
        assertTrue(r.out().contains("t5: d_model 64, 2 blocks, 4 heads x 16, gated-GELU d_ff 160, vocab 32128, 32 position buckets"),
                r.out());
        assertTrue(r.out().contains("dtype F8_E4M3"), r.out());
    }

    @Test
    void separateT5AsJson() throws Exception {
        Result r = run("info", "--json", t5File(DType.F16).toString());
        assertEquals(0, r.code(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals("t5", j.get("kind").asText());
        assertEquals(4, j.get("t5").get("heads").asInt());
        assertEquals(16, j.get("t5").get("dKv").asInt());
        assertEquals("F16", j.get("stats").get("dtype").asText());
    }
}
