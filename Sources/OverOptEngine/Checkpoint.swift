// Checkpoint.swift — saving and loading models as HDF5 groups.
//
// A checkpoint group holds one float32 dataset per named tensor under `params/` (with its
// natural shape) and the model's configuration as JSON string attributes `config` and
// `heads` (and `lora` for a model with adapters; their tensors are under `params/` too),
// so any HDF5 reader can see the weights and a model can be rebuilt exactly.
import Foundation
import OverOptHDF5

/// A checkpoint that cannot be loaded (missing tensor, wrong shape, bad config).
public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
}

extension Transformer {
    /// Writes every parameter tensor and the configuration under `group`.
    public func save(to group: H5Group) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try group.setAttribute("config", String(decoding: try enc.encode(config), as: UTF8.self))
        try group.setAttribute("heads", String(decoding: try enc.encode(heads), as: UTF8.self))
        if let lora { try group.setAttribute("lora", String(decoding: try enc.encode(lora.config), as: UTF8.self)) }
        try group.setAttribute("parameter_count", Int64(parameterCount))
        let params = try group.createGroup("params")
        for t in layout.tensors {
            try params.write(t.name, tensor(t.name), shape: t.shape)
        }
    }

    /// Rebuilds a model from a group written by `save(to:)`.
    public static func load(from group: H5Group) throws -> Transformer {
        let dec = JSONDecoder()
        guard let config = try? dec.decode(TransformerConfig.self, from: Data(try group.stringAttribute("config").utf8)),
              let heads = try? dec.decode(HeadConfig.self, from: Data(try group.stringAttribute("heads").utf8)) else {
            throw CheckpointError(description: "\(group.path): the 'config' or 'heads' attribute is not a valid model configuration")
        }
        if let e = config.validationError() { throw CheckpointError(description: "\(group.path): \(e)") }
        var lora: LoRAConfig?
        if group.hasAttribute("lora") {
            guard let l = try? dec.decode(LoRAConfig.self, from: Data(try group.stringAttribute("lora").utf8)),
                  l.validationError() == nil else {
                throw CheckpointError(description: "\(group.path): the 'lora' attribute is not a valid LoRA configuration")
            }
            lora = l
        }
        let model = Transformer(config: config, heads: heads, lora: lora)
        let params = try group.group("params")
        for t in model.layout.tensors {
            guard params.contains(t.name) else {
                throw CheckpointError(description: "\(group.path)/params: missing tensor '\(t.name)'")
            }
            let (values, shape) = try params.readFloats(t.name)
            guard shape == t.shape else {
                throw CheckpointError(description: "\(group.path)/params/\(t.name): shape \(shape), expected \(t.shape)")
            }
            model.setTensor(t.name, values)
        }
        return model
    }
}
