package jdiffusion.workflow;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;

/** Test helpers: a temporary ComfyUI base dir holding the tiny golden models, and API-format workflows built in code. */
final class Workflows {
    private Workflows() {
    }

    /** Copies (not links: links leading out of a model folder are refused) golden models into base/models/kind. */
    static Path place(Path base, String kind, String goldenModel) throws IOException {
        Path dir = base.resolve("models").resolve(kind);
        Files.createDirectories(dir);
        Path target = dir.resolve(goldenModel);
        if (!Files.exists(target)) {
            Files.copy(Golden.model(goldenModel), target, StandardCopyOption.COPY_ATTRIBUTES);
        }
        return target;
    }

    /** A prompt under construction: node id -> {class_type, inputs}. */
    static final class Builder {
        final ObjectNode root = JsonNodeFactory.instance.objectNode();

        Builder node(String id, String classType, Object... nameValuePairs) {
            ObjectNode n = root.putObject(id);
            n.put("class_type", classType);
            ObjectNode in = n.putObject("inputs");
            for (int i = 0; i < nameValuePairs.length; i += 2) {
                String name = (String) nameValuePairs[i];
                Object v = nameValuePairs[i + 1];
                switch (v) {
                    case Link l -> in.putArray(name).add(l.id).add(l.slot);
                    case String s -> in.put(name, s);
                    case Integer x -> in.put(name, x);
                    case Long x -> in.put(name, x);
                    case Double x -> in.put(name, x);
                    case Boolean x -> in.put(name, x);
                    default -> throw new IllegalArgumentException("unsupported input value " + v);
                }
            }
            return this;
        }

        Prompt build() {
            return Prompt.parse(root.deepCopy());
        }
    }

    record Link(String id, int slot) {
    }

    static Link link(String id, int slot) {
        return new Link(id, slot);
    }

    /** The settings of one txt2img / img2img run. */
    record Settings(String checkpoint, String prompt, String negative, int width, int height, int batch, long seed,
            int steps, double cfg, String sampler, String scheduler, double denoise, String inputImage,
            List<String[]> loras, String sampling) {
    }

    /**
     * ComfyUI's default graph: CheckpointLoaderSimple -> [LoraLoader...] -> CLIPTextEncode x2 -> EmptyLatentImage
     * (or LoadImage + VAEEncode) -> [ModelSamplingDiscrete] -> KSampler "3" -> VAEDecode "8" -> SaveImage "9".
     */
    static Prompt txt2img(Settings s) {
        Builder b = new Builder();
        b.node("4", "CheckpointLoaderSimple", "ckpt_name", s.checkpoint());
        Link model = link("4", 0);
        Link clip = link("4", 1);
        List<String[]> loras = s.loras() == null ? List.of() : s.loras();
        for (int i = 0; i < loras.size(); i++) {
            String id = "20" + i;
            b.node(id, "LoraLoader", "model", model, "clip", clip, "lora_name", loras.get(i)[0], "strength_model",
                    Double.parseDouble(loras.get(i)[1]), "strength_clip", Double.parseDouble(loras.get(i)[2]));
            model = link(id, 0);
            clip = link(id, 1);
        }
        if (s.sampling() != null) {
            b.node("30", "ModelSamplingDiscrete", "model", model, "sampling", s.sampling(), "zsnr", false);
            model = link("30", 0);
        }
        b.node("6", "CLIPTextEncode", "text", s.prompt(), "clip", clip);
        b.node("7", "CLIPTextEncode", "text", s.negative(), "clip", clip);
        Link latent;
        if (s.inputImage() == null) {
            b.node("5", "EmptyLatentImage", "width", s.width(), "height", s.height(), "batch_size", s.batch());
            latent = link("5", 0);
        } else {
            b.node("10", "LoadImage", "image", s.inputImage());
            b.node("11", "VAEEncode", "pixels", link("10", 0), "vae", link("4", 2));
            latent = link("11", 0);
        }
        b.node("3", "KSampler", "model", model, "seed", s.seed(), "steps", s.steps(), "cfg", s.cfg(),
                "sampler_name", s.sampler(), "scheduler", s.scheduler(), "positive", link("6", 0), "negative",
                link("7", 0), "latent_image", latent, "denoise", s.denoise());
        b.node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2));
        b.node("9", "SaveImage", "images", link("8", 0), "filename_prefix", "ComfyUI");
        return b.build();
    }

    /** The files a SaveImage ui output lists, resolved under the output folder. */
    @SuppressWarnings("unchecked")
    static List<Path> savedFiles(ModelPaths paths, Map<String, Object> ui) {
        List<Path> files = new ArrayList<>();
        for (Object o : (List<Object>) ui.get("images")) {
            Map<String, Object> m = (Map<String, Object>) o;
            Path root = "temp".equals(m.get("type")) ? paths.tempDir() : paths.outputDir();
            String sub = (String) m.get("subfolder");
            files.add((sub.isEmpty() ? root : root.resolve(sub)).resolve((String) m.get("filename")));
        }
        return files;
    }

    /** Events as ComfyUI names them, in order, with the node where one applies. */
    static class EventLog implements ExecutionListener {
        final List<String> events = new ArrayList<>();
        final List<String> cached = new ArrayList<>();
        int progressCalls;
        final List<String> steps = new ArrayList<>();
        int[] lastShape;

        @Override
        public void executionStart(String promptId) {
            events.add("execution_start");
        }

        @Override
        public void executionCached(String promptId, List<String> nodeIds) {
            events.add("execution_cached");
            cached.addAll(nodeIds);
        }

        @Override
        public void executing(String promptId, String nodeId) {
            events.add("executing " + nodeId);
        }

        @Override
        public void progress(String promptId, String nodeId, int value, int max, float[] latent, int[] shape) {
            progressCalls++;
            steps.add(value + "/" + max);
            lastShape = shape.clone();
            if (events.isEmpty() || !events.getLast().startsWith("progress")) {
                events.add("progress " + nodeId);
            }
        }

        @Override
        public void executed(String promptId, String nodeId, Map<String, Object> ui) {
            events.add("executed " + nodeId);
        }

        @Override
        public void executionSuccess(String promptId) {
            events.add("execution_success");
        }

        @Override
        public void executionError(String promptId, String nodeId, String nodeType, List<String> executed,
                String exceptionMessage, String exceptionType) {
            events.add("execution_error " + nodeId + ": " + exceptionMessage);
        }

        @Override
        public void executionInterrupted(String promptId, String nodeId, String nodeType, List<String> executed) {
            events.add("execution_interrupted " + nodeId);
        }
    }
}
