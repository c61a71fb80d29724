import { describe } from 'vitest';
import { sweep } from './seeds.js';

describe('the lunch rush over many seeds (first half)', () => sweep(0));
