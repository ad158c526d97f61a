package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** ComfyUI-shaped validation errors for each kind of problem; nothing here loads a model. */
class PromptValidatorTest {
    @TempDir
    Path base;
    ModelPaths paths;

    @BeforeEach
    void setUp() throws IOException {
        paths = ModelPaths.of(base);
        // validation only lists the folder; the file is never opened
        Files.writeString(base.resolve("models/checkpoints/model.safetensors"), "not read");
    }

    /** A valid default graph whose inputs the tests then break one at a time. */
    private static Workflows.Builder graph() {
        return new Workflows.Builder()
                .node("4", "CheckpointLoaderSimple", "ckpt_name", "model.safetensors")
                .node("6", "CLIPTextEncode", "text", "a cat", "clip", link("4", 1))
                .node("7", "CLIPTextEncode", "text", "", "clip", link("4", 1))
                .node("5", "EmptyLatentImage", "width", 512, "height", 512, "batch_size", 1)
                .node("3", "KSampler", "model", link("4", 0), "seed", 1, "steps", 20, "cfg", 8.0, "sampler_name",
                        "euler", "scheduler", "normal", "positive", link("6", 0), "negative", link("7", 0),
                        "latent_image", link("5", 0), "denoise", 1.0)
                .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                .node("9", "SaveImage", "images", link("8", 0), "filename_prefix", "ComfyUI");
    }

    private PromptValidator.Result validate(Workflows.Builder b) {
        return PromptValidator.validate(b.build(), paths);
    }

    /** The single input error of node id. */
    private static JsonNode onlyError(PromptValidator.Result r, String id) {
        JsonNode errs = r.nodeErrors().path(id).path("errors");
        assertEquals(1, errs.size(), r.toJson().toString());
        return errs.get(0);
    }

    @Test
    void validGraphPasses() {
        PromptValidator.Result r = validate(graph());
        assertTrue(r.ok(), r.toJson().toString());
        assertEquals(java.util.List.of("9"), r.goodOutputs());
        assertTrue(r.nodeErrors().isEmpty());
    }

    @Test
    void missingInput() {
        Workflows.Builder b = graph();
        ((com.fasterxml.jackson.databind.node.ObjectNode) b.root.path("3").path("inputs")).remove("steps");
        PromptValidator.Result r = validate(b);
        assertFalse(r.ok());
        assertEquals("prompt_outputs_failed_validation", r.error().path("type").asText());
        JsonNode e = onlyError(r, "3");
        assertEquals("required_input_missing", e.path("type").asText());
        assertEquals("Required input is missing", e.path("message").asText());
        assertEquals("steps", e.path("details").asText());
        assertEquals("steps", e.path("extra_info").path("input_name").asText());
        assertEquals("KSampler", r.nodeErrors().path("3").path("class_type").asText());
        assertEquals("9", r.nodeErrors().path("3").path("dependent_outputs").get(0).asText());
    }

    @Test
    void wrongLinkType() {
        PromptValidator.Result r = validate(graph().node("8", "VAEDecode", "samples", link("3", 0), "vae",
                link("4", 1)));
        JsonNode e = onlyError(r, "8");
        assertEquals("return_type_mismatch", e.path("type").asText());
        assertEquals("vae, received_type(CLIP) mismatch input_type(VAE)", e.path("details").asText());
        assertEquals("CLIP", e.path("extra_info").path("received_type").asText());
        assertEquals("vae", e.path("extra_info").path("input_name").asText());
    }

    @Test
    void unknownClass() {
        PromptValidator.Result r = validate(graph().node("12", "NoSuchNodeClass", "model_name", "x"));
        assertEquals("invalid_prompt", r.error().path("type").asText());
        assertEquals("Cannot execute because node NoSuchNodeClass does not exist.",
                r.error().path("message").asText());
        assertEquals("Node ID '#12'", r.error().path("details").asText());
    }

    @Test
    void valuesOutOfRange() {
        PromptValidator.Result r = validate(graph().node("5", "EmptyLatentImage", "width", 8, "height", 512,
                "batch_size", 5000));
        JsonNode errs = r.nodeErrors().path("5").path("errors");
        assertEquals(2, errs.size(), r.toJson().toString());
        assertEquals("value_smaller_than_min", errs.get(0).path("type").asText());
        assertEquals("Value 8 smaller than min of 16", errs.get(0).path("message").asText());
        assertEquals("width", errs.get(0).path("extra_info").path("input_name").asText());
        assertEquals("value_bigger_than_max", errs.get(1).path("type").asText());
        assertEquals("Value 5000 bigger than max of 4096", errs.get(1).path("message").asText());

        JsonNode cfg = onlyError(validate(graph().node("3", "KSampler", "model", link("4", 0), "seed", -1, "steps",
                20, "cfg", 8.0, "sampler_name", "euler", "scheduler", "normal", "positive", link("6", 0),
                "negative", link("7", 0), "latent_image", link("5", 0), "denoise", 1.0)), "3");
        assertEquals("value_smaller_than_min", cfg.path("type").asText());
        assertEquals("seed", cfg.path("extra_info").path("input_name").asText());
    }

    @Test
    void seedUpToTwoToTheSixtyFourMinusOne() {
        Workflows.Builder b = graph();
        ((com.fasterxml.jackson.databind.node.ObjectNode) b.root.path("3").path("inputs"))
                .put("seed", new java.math.BigInteger("18446744073709551615"));
        assertTrue(validate(b).ok());
        ((com.fasterxml.jackson.databind.node.ObjectNode) b.root.path("3").path("inputs"))
                .put("seed", new java.math.BigInteger("18446744073709551616"));
        assertEquals("value_bigger_than_max", onlyError(validate(b), "3").path("type").asText());
    }

    @Test
    void badTypeConversion() {
        JsonNode e = onlyError(validate(graph().node("5", "EmptyLatentImage", "width", "wide", "height", 512,
                "batch_size", 1)), "5");
        assertEquals("invalid_input_type", e.path("type").asText());
        assertEquals("Failed to convert an input value to a INT value", e.path("message").asText());
    }

    @Test
    void fileNotInTheModelFolder() {
        JsonNode e = onlyError(validate(graph().node("4", "CheckpointLoaderSimple", "ckpt_name",
                "missing.safetensors")), "4");
        assertEquals("value_not_in_list", e.path("type").asText());
        assertEquals("Value not in list", e.path("message").asText());
        assertEquals("ckpt_name: 'missing.safetensors' not in ['model.safetensors']", e.path("details").asText());
        assertEquals("ckpt_name", e.path("extra_info").path("input_name").asText());

        JsonNode s = onlyError(validate(graph().node("3", "KSampler", "model", link("4", 0), "seed", 1, "steps", 20,
                "cfg", 8.0, "sampler_name", "no_such_sampler", "scheduler", "normal", "positive", link("6", 0),
                "negative", link("7", 0), "latent_image", link("5", 0), "denoise", 1.0)), "3");
        assertEquals("value_not_in_list", s.path("type").asText());
        assertEquals("sampler_name", s.path("extra_info").path("input_name").asText());
    }

    @Test
    void traversalInAFileNameIsNotInTheList() {
        JsonNode e = onlyError(validate(graph().node("4", "CheckpointLoaderSimple", "ckpt_name",
                "../checkpoints/model.safetensors")), "4");
        assertEquals("value_not_in_list", e.path("type").asText());
    }

    @Test
    void noOutputNode() {
        Workflows.Builder b = graph();
        b.root.remove("9");
        PromptValidator.Result r = validate(b);
        assertEquals("prompt_no_outputs", r.error().path("type").asText());
        assertEquals("Prompt has no outputs", r.error().path("message").asText());
        assertTrue(r.nodeErrors().isEmpty());
    }

    @Test
    void badLinksAndCycles() {
        JsonNode missing = onlyError(validate(graph().node("8", "VAEDecode", "samples", link("99", 0), "vae",
                link("4", 2))), "8");
        assertEquals("bad_linked_input", missing.path("type").asText());
        JsonNode slot = onlyError(validate(graph().node("8", "VAEDecode", "samples", link("3", 5), "vae",
                link("4", 2))), "8");
        assertEquals("bad_linked_input", slot.path("type").asText());
        Workflows.Builder b = graph();
        ((com.fasterxml.jackson.databind.node.ObjectNode) b.root.path("8").path("inputs")).putArray("samples")
                .add("3");
        assertEquals("bad_linked_input", onlyError(validate(b), "8").path("type").asText());
        // an ImageScale that feeds itself
        PromptValidator.Result cycle = validate(graph()
                .node("20", "ImageScale", "image", link("20", 0), "upscale_method", "bilinear", "width", 8,
                        "height", 8, "crop", "disabled")
                .node("21", "PreviewImage", "images", link("20", 0)));
        assertEquals("dependency_cycle", onlyError(cycle, "20").path("type").asText());
        assertTrue(cycle.ok(), "the other output still validates");
        assertEquals(java.util.List.of("9"), cycle.goodOutputs());
    }

    @Test
    void literalWhereALinkIsNeeded() {
        JsonNode e = onlyError(validate(graph().node("8", "VAEDecode", "samples", "latent", "vae", link("4", 2))),
                "8");
        assertEquals("invalid_input_type", e.path("type").asText());
    }

    @Test
    void uiFormatIsRefusedWithAHint() {
        WorkflowException e = org.junit.jupiter.api.Assertions.assertThrows(WorkflowException.class,
                () -> Prompt.parse("{\"nodes\": [], \"links\": [], \"version\": 0.4}"));
        assertTrue(e.getMessage().contains("API format"), e.getMessage());
    }
}
