import OverOptEngine
import TOMLKit
public enum OverOptVersion { public static let string = "0.1.0" }
