package jdiffusion.pipeline;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import jdiffusion.io.ControlNetWeights;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.model.ControlNet;
import jdiffusion.pipeline.GenerateRequest.ControlSpec;

/** Checks a request's ControlNets, and loads them with their hints for one generation. */
final class ControlSpecs {
    /** The preprocessors a ControlSpec may name. */
    static final Set<String> MODULES = Set.of("none", "canny", "invert");

    private ControlSpecs() {
    }

    static void validate(List<ControlSpec> controls) {
        for (int i = 0; i < controls.size(); i++) {
            ControlSpec c = controls.get(i);
            String which = "ControlNet " + i;
            RequestValidator.requireFile(which, c.model());
            RequestValidator.requireFile(which + " hint image", c.image());
            if (!Double.isFinite(c.strength())) {
                throw new GenerateException(which + ": strength must be a finite number, got " + c.strength());
            }
            if (!(c.start() >= 0 && c.start() <= 1 && c.end() >= 0 && c.end() <= 1 && c.start() <= c.end())) {
                throw new GenerateException(which + ": start and end must satisfy 0 <= start <= end <= 1, got "
                        + c.start() + " and " + c.end());
            }
            if (!MODULES.contains(c.module())) {
                throw new GenerateException(which + ": unknown preprocessor '" + c.module() + "' (known: none, canny,"
                        + " invert)");
            }
            if (c.module().equals("canny")) {
                Preprocessors.checkCannyThresholds(c.low(), c.high());
            }
        }
    }

    /** The request's ControlNets loaded, their hints preprocessed and resized to the generation's size. */
    static ControlStack load(List<ControlSpec> controls, String family, ResolvedSettings s,
            java.util.function.Function<ControlSpec, ControlStack.Window> windows) {
        List<ControlStack.Entry> entries = new ArrayList<>();
        for (int i = 0; i < controls.size(); i++) {
            ControlSpec c = controls.get(i);
            ControlNet net = loadNet(c.model());
            if (!net.config().family().name().equals(family)) {
                throw new GenerateException("ControlNet " + c.model().getFileName() + " is for "
                        + net.config().family() + " but the model is " + family);
            }
            float[] hint = hint(c, s.width(), s.height(), s.semantics());
            entries.add(new ControlStack.Entry(net, hint, 1, s.height(), s.width(), (float) c.strength(),
                    windows.apply(c)));
        }
        return new ControlStack(entries);
    }

    static ControlNet loadNet(java.nio.file.Path file) {
        try (SafeTensors f = SafeTensors.open(file)) {
            return ControlNet.load(ControlNetWeights.of(f));
        } catch (ModelFormatException e) {
            throw new GenerateException(e.getMessage(), e);
        }
    }

    /**
     * The hint as the reference prepares it: read as RGB / 255, preprocessed, then brought to width x height
     * (ComfyUI: centre crop to the aspect and nearest-exact; diffusers: PIL Lanczos of the 8-bit image).
     */
    static float[] hint(ControlSpec c, int width, int height, ResolvedSettings.Semantics semantics) {
        PngImage png;
        try {
            png = PngReader.read(c.image());
        } catch (IOException e) {
            throw new GenerateException("ControlNet hint image " + e.getMessage());
        }
        float[] image = Preprocessors.apply(c.module(), ControlHint.unitFloats(png), png.height(), png.width(),
                c.low(), c.high());
        return semantics == ResolvedSettings.Semantics.COMFY
                ? ControlHint.comfyResize(image, 3, png.height(), png.width(), height, width)
                : ControlHint.diffusersResize(image, png.height(), png.width(), height, width);
    }
}
