package jdiffusion.cli;

import static jdiffusion.cli.CliTests.golden;
import static jdiffusion.cli.CliTests.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdiffusion.cli.CliTests.Result;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code jdiffusion tokenize} on the tiny checkpoints and on bad input. */
class TokenizeCommandTest {
    private static final int BOS = 49406;
    private static final int EOS = 49407;

    private static List<Integer> row(JsonNode json, String encoder, int chunk) {
        List<Integer> ids = new ArrayList<>();
        json.get(encoder).get(chunk).forEach(n -> ids.add(n.asInt()));
        return ids;
    }

    private static List<Integer> expectedRow(int pad, int... ids) {
        List<Integer> row = new ArrayList<>();
        row.add(BOS);
        for (int id : ids) {
            row.add(id);
        }
        row.add(EOS);
        while (row.size() < 77) {
            row.add(pad);
        }
        return row;
    }

    @Test
    void sd1CheckpointHasOneClipL() throws Exception {
        Result r = run("tokenize", "-m", golden().resolve("models/tiny-sd1-fp16.safetensors").toString(), "-p", "a photo of a cat");
        assertEquals(0, r.code(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertEquals(List.of("clip_l"), iterableNames(json));
        assertEquals(1, json.get("clip_l").size());
        assertEquals(expectedRow(EOS, 320, 1125, 539, 320, 2368), row(json, "clip_l", 0));
    }

    @Test
    void sdxlCheckpointHasClipLAndClipGWithTheirPads() throws Exception {
        String prompt = "a photo of a cat, ".repeat(13); // 78 tokens: two chunks
        Result r = run("tokenize", "-m", golden().resolve("models/tiny-sdxl-fp16.safetensors").toString(), "-p", prompt);
        assertEquals(0, r.code(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertEquals(List.of("clip_l", "clip_g"), iterableNames(json));
        assertEquals(2, json.get("clip_l").size());
        assertEquals(2, json.get("clip_g").size());
        // 13 x "a photo of a cat ," = 78 ids; the second chunk holds ids 76..78: "a", "cat", ","
        List<Integer> l1 = row(json, "clip_l", 1);
        List<Integer> g1 = row(json, "clip_g", 1);
        assertEquals(expectedRow(EOS, 320, 2368, 267), l1);
        assertEquals(expectedRow(0, 320, 2368, 267), g1);
    }

    @Test
    void missingFileIsOneLineError() {
        Result r = run("tokenize", "-m", "/nonexistent/model.safetensors", "-p", "cat");
        assertNotEquals(0, r.code());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("/nonexistent/model.safetensors") && r.err().contains("not found"), r.err());
    }

    @Test
    void safetensorsWithoutTextEncoderIsOneLineError(@TempDir Path tmp) throws Exception {
        Path notCheckpoint = golden().resolve("tokenizer_clip.safetensors");
        Result r = run("tokenize", "-m", notCheckpoint.toString(), "-p", "cat");
        assertNotEquals(0, r.code());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("no text encoder"), r.err());

        Path garbage = Files.writeString(tmp.resolve("garbage.safetensors"), "not a safetensors file at all");
        Result g = run("tokenize", "-m", garbage.toString(), "-p", "cat");
        assertNotEquals(0, g.code());
        assertEquals(1, g.err().strip().lines().count(), g.err());
    }

    private static List<String> iterableNames(JsonNode json) {
        List<String> names = new ArrayList<>();
        json.fieldNames().forEachRemaining(names::add);
        return names;
    }
}
