package jdiffusion.cli;

import static jdiffusion.cli.LightningCli.cli;
import static jdiffusion.cli.LightningCli.model;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jdiffusion info LORA_FILE} on the two golden kohya LoRAs: format, family, rank, alpha and modules per
 * component, checked against a count made here from the file's keys and against the golden README's numbers
 * (SD1: 654 keys, 218 modules; SDXL: 708 keys, 236 modules = UNet 200 + te1 18 + te2 18; rank 4).
 */
class InfoLoraTest {

    /** What the file holds, counted independently: modules per component, ranks, alphas, keys. */
    private record Counted(Map<String, Integer> modules, Set<Integer> ranks, Set<Float> alphas, int keys) {
        int total() {
            return modules.values().stream().mapToInt(Integer::intValue).sum();
        }
    }

    private static Counted count(Path file) throws Exception {
        Map<String, Integer> modules = new TreeMap<>();
        Set<Integer> ranks = new TreeSet<>();
        Set<Float> alphas = new TreeSet<>();
        try (SafeTensors st = SafeTensors.open(file)) {
            for (String key : st.names()) {
                if (key.endsWith(".lora_down.weight")) {
                    String component = key.startsWith("lora_unet_") ? "UNet" : key.startsWith("lora_te2_") ? "te2"
                            : key.startsWith("lora_te1_") || key.startsWith("lora_te_") ? "te1" : "?";
                    modules.merge(component, 1, Integer::sum);
                    ranks.add(st.info(key).dims()[0]);
                } else if (key.endsWith(".alpha")) {
                    alphas.add(st.floats(key)[0]);
                }
            }
            return new Counted(modules, ranks, alphas, st.names().size());
        }
    }

    private static void describes(String name, String family, int modules, String perComponent, float alpha)
            throws Exception {
        Path file = model(name);
        Counted c = count(file);
        assertEquals(modules, c.total(), "independent count");
        assertEquals(Set.of(4), c.ranks());
        assertEquals(Set.of(alpha), c.alphas());

        LightningCli.Run r = cli("info", file.toString());
        assertEquals(0, r.exit(), r.err());
        assertEquals(String.join("\n",
                name + ": LoRA",
                "  format:  kohya LoRA",
                "  family:  " + family,
                "  rank:    4",
                "  alpha:   " + alpha), r.out().lines().limit(5).reduce((a, b) -> a + "\n" + b).orElseThrow());
        assertTrue(r.out().contains("  modules: " + modules + " (" + perComponent + ")"), r.out());
        assertTrue(r.out().contains("  keys:    " + c.keys()), r.out());

        JsonNode j = LightningCli.JSON.readTree(cli("info", "--json", file.toString()).out());
        assertEquals("lora", j.path("kind").asText());
        assertEquals("kohya LoRA", j.path("format").asText());
        assertEquals(family, j.path("family").asText());
        assertEquals("[4]", j.path("ranks").toString());
        assertEquals(alpha, (float) j.path("alphas").get(0).asDouble());
        assertEquals(modules, j.path("module_count").asInt());
        assertEquals(c.keys(), j.path("keys").asInt());
        c.modules().forEach((component, n) -> assertEquals(n, j.path("modules").path(component).asInt(), component));
        assertEquals(c.modules().size(), j.path("modules").size());
    }

    @Test
    void sd1Lora() throws Exception {
        describes("tiny-sd1-lora-kohya.safetensors", "SD1/SD2", 218, "UNet 200, te1 18", 2.0f);
        assertEquals(654, count(model("tiny-sd1-lora-kohya.safetensors")).keys());
    }

    @Test
    void sdxlLora() throws Exception {
        describes("tiny-sdxl-lora-kohya.safetensors", "SDXL", 236, "UNet 200, te1 18, te2 18", 1.0f);
        assertEquals(708, count(model("tiny-sdxl-lora-kohya.safetensors")).keys());
    }

    @TempDir
    Path dir;

    @Test
    void aLoraWithoutAlphaOrWithMismatchedRanks() throws Exception {
        String module = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
        Path noAlpha = dir.resolve("no_alpha.safetensors");
        SafeTensorsWriter.to(noAlpha)
                .add(module + ".lora_down.weight", DType.F32, new long[] {2, 8}, new float[16])
                .add(module + ".lora_up.weight", DType.F32, new long[] {8, 2}, new float[16]).write();
        LightningCli.Run r = cli("info", noAlpha.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("  rank:    2\n"), r.out());
        assertTrue(r.out().contains("  alpha:   none (1 modules without alpha use alpha = rank)"), r.out());
        assertTrue(r.out().contains("  modules: 1 (UNet 1)"), r.out());

        Path mismatch = dir.resolve("mismatch.safetensors");
        SafeTensorsWriter.to(mismatch)
                .add(module + ".lora_down.weight", DType.F32, new long[] {4, 8}, new float[32])
                .add(module + ".lora_up.weight", DType.F32, new long[] {8, 2}, new float[16]).write();
        LightningCli.Run bad = cli("info", mismatch.toString());
        assertTrue(bad.exit() != 0, bad.out());
        String[] lines = bad.err().strip().split("\n");
        assertEquals(1, lines.length, bad.err());
        assertTrue(lines[0].startsWith("jdiffusion: error: ") && lines[0].contains(module), lines[0]);
        assertTrue(lines[0].contains("rank"), lines[0]);
    }

    @Test
    void checkpointsAndUnetsAreStillDescribedAsSuch() {
        LightningCli.Run ckpt = cli("info", model("tiny-sdxl-fp16.safetensors").toString());
        assertEquals(0, ckpt.exit(), ckpt.err());
        assertTrue(ckpt.out().contains("SDXL checkpoint"), ckpt.out());
        LightningCli.Run unet = cli("info", model("tiny-sdxl-unet-diffusers-fp16.safetensors").toString());
        assertTrue(unet.out().contains("UNet alone (diffusers layout, SDXL-style)"), unet.out());
    }
}
