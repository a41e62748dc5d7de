/**
 * Base of every session class: `JSON.stringify` and `util.inspect` show only the class name and
 * the instance URL, never a token or a credential (those live in private fields anyway).
 */
export abstract class Redacted {
  abstract readonly instanceUrl: string;

  toJSON(): { type: string; instanceUrl: string } {
    return { type: this.constructor.name, instanceUrl: this.instanceUrl };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `${this.constructor.name} { instanceUrl: '${this.instanceUrl}' }`;
  }
}
