import { describe } from 'vitest';
import { sweep } from './seeds.js';

describe('the lunch rush over many seeds (second half)', () => sweep(1));
